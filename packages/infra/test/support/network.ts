/** Loopback networking for tests: free ports, and a relay that plays a server going away. */
import { Effect } from "effect"
import type { AddressInfo, Server, Socket } from "node:net"
import { connect, createServer } from "node:net"

/** A TCP relay to the server that the test can cut and restore, to play a server that goes away. */
export const tcpProxy = (target: URL, defaultPort: number) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const sockets = new Set<Socket>()
      let server: Server | undefined
      let port = 0
      const start = () =>
        new Promise<void>((resolve, reject) => {
          server = createServer((client) => {
            const upstream = connect(Number(target.port || defaultPort), target.hostname)
            const close = () => {
              client.destroy()
              upstream.destroy()
              sockets.delete(client)
              sockets.delete(upstream)
            }
            for (const socket of [client, upstream]) {
              sockets.add(socket)
              socket.on("error", close).on("close", close)
            }
            client.pipe(upstream).pipe(client)
          })
          server.once("error", reject).listen(port, "127.0.0.1", () => {
            port = (server!.address() as AddressInfo).port
            resolve()
          })
        })
      const stop = () =>
        new Promise<void>((resolve) => {
          for (const socket of sockets) socket.destroy()
          sockets.clear()
          if (server === undefined) resolve()
          else server.close(() => resolve())
        })
      await start()
      return { port, start, stop }
    }),
    (proxy) => Effect.promise(() => proxy.stop())
  )

/** A loopback port with nothing listening on it (free at the time of the call). */
export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(address)))
    })
  })
