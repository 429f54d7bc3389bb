/**
 * The HTTP floor of `pnpm bench`: a bare `node:http` server answering every
 * request with a small JSON order, as fast as Node answers at all. Plain Node
 * on purpose: no Effect, no routing, nothing the floor should not include.
 * Listens on 127.0.0.1:$PORT until SIGTERM.
 */
import { createServer } from "node:http"

const body = JSON.stringify({ id: "bench-order", name: "bench order", status: "new", version: 1 })
const headers = { "content-type": "application/json", "content-length": Buffer.byteLength(body) }
const port = Number(process.env.PORT)

createServer((_request, response) => {
  response.writeHead(200, headers)
  response.end(body)
}).listen(port, "127.0.0.1", () => console.log(`Listening on http://127.0.0.1:${port}`))
process.once("SIGTERM", () => process.exit(0))
