/**
 * The embedded system on a real loopback HTTP server, and ways to talk to it:
 * through the platform's client, or byte by byte over a socket for requests no
 * well-behaved client would send.
 */
import { HttpClient, HttpClientRequest, HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Workers } from "@orders/infra/Workers"
import { ConfigProvider, Duration, Effect, Layer } from "effect"
import { connect } from "node:net"
import { EmbeddedWorkersLive, MemoryAdaptersLive } from "../../src/Embedded.js"
import { HttpAppLive } from "../../src/Http.js"

/**
 * Processing never finishes, so "processing" stays observable; `config` adds
 * or overrides variables; `adapters` replaces the in-memory ones.
 */
export const apiSystem = (config: Record<string, string> = {}, adapters = MemoryAdaptersLive) =>
  Layer.mergeAll(HttpAppLive, EmbeddedWorkersLive).pipe(
    Layer.provideMerge(adapters),
    Layer.provide(Workers.Default),
    Layer.provideMerge(NodeHttpServer.layerTest),
    Layer.provide(Layer.setConfigProvider(
      ConfigProvider.fromMap(
        new Map([["PROCESSING_DELAY", "1 hour"], ["HTTP_ACCESS_LOG", "false"], ...Object.entries(config)])
      )
    ))
  )

/** A JSON body as the tests read it: a problem document, an order, or a list. */
export type Body = Readonly<Record<string, unknown>> & ReadonlyArray<Readonly<Record<string, unknown>>>

export interface Answer {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: Body
}

export const send = (request: HttpClientRequest.HttpClientRequest) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const response = yield* client.execute(request)
    const text = yield* response.text
    return {
      status: response.status,
      headers: response.headers,
      body: (text !== "" && response.headers["content-type"]?.includes("json") ? JSON.parse(text) : text) as Body
    } satisfies Answer
  }).pipe(Effect.scoped)

export const post = (path: string, body: string, contentType = "application/json", headers = {}) =>
  send(
    HttpClientRequest.post(path).pipe(
      HttpClientRequest.bodyText(body, contentType),
      HttpClientRequest.setHeaders(headers)
    )
  )
export const get = (path: string, headers = {}) => send(HttpClientRequest.get(path, { headers }))
export const create = (order: object, headers = {}) => post("/", JSON.stringify(order), "application/json", headers)

/**
 * Writes `head` (and `body`) as they are to the server's socket and returns
 * the status line and headers of the answer, or fails when none comes within
 * `within`.
 */
export const raw = (head: string, body: string | Buffer = "", within = Duration.seconds(5)) =>
  Effect.gen(function*() {
    const server = yield* HttpServer.HttpServer
    const { port } = server.address as HttpServer.TcpAddress
    return yield* Effect.async<string, Error>((resume) => {
      const socket = connect(port, "127.0.0.1", () => {
        socket.write(head.replaceAll("\n", "\r\n") + "\r\n")
        if (body.length > 0) socket.write(body)
      })
      let received = ""
      socket.on("data", (chunk) => {
        received += chunk.toString("latin1")
        if (received.includes("\r\n\r\n")) {
          socket.destroy()
          resume(Effect.succeed(received))
        }
      })
      socket.on("error", (error) => resume(Effect.fail(error)))
      return Effect.sync(() => socket.destroy())
    }).pipe(
      Effect.timeoutFail({
        duration: within,
        onTimeout: () => new Error(`no answer within ${Duration.format(within)}`)
      })
    )
  })

/** The status of a raw answer. */
export const statusOf = (answer: string) => Number(answer.split(" ")[1])
