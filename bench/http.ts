/**
 * Throughput and latency of the Orders API under load from this machine.
 *
 *   pnpm bench                                  # starts the embedded program (in-memory adapters)
 *   BENCH_URL=http://127.0.0.1:8080 pnpm bench  # a server you started (e.g. `pnpm start:server`)
 *
 * BENCH_SECONDS (default 10) and BENCH_CONNECTIONS (default 50) shape each run.
 * Prints one line per scenario; nothing is asserted.
 */
import { freePort } from "@orders/infra/testing/network"
import { startProgram, waitForOutput } from "@orders/server/testing/programs"
import autocannon from "autocannon"
import { Effect, Exit, Scope } from "effect"

const seconds = Number(process.env.BENCH_SECONDS ?? 10)
const connections = Number(process.env.BENCH_CONNECTIONS ?? 50)
const run = crypto.randomUUID().slice(0, 8)

/** The embedded program for as long as the bench runs; `stop` sends it SIGTERM. */
const startEmbedded = Effect.gen(function*() {
  const scope = yield* Scope.make()
  const port = yield* Effect.promise(freePort)
  const program = yield* startProgram("server/src/bin/embedded.ts", {
    PORT: String(port),
    PROCESSING_DELAY: "1 millis"
  })
    .pipe(Scope.extend(scope))
  yield* waitForOutput(program, "Listening on")
  return { url: `http://127.0.0.1:${port}`, stop: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
})

const target = process.env.BENCH_URL
  ? { url: process.env.BENCH_URL, stop: async () => undefined }
  : await Effect.runPromise(startEmbedded)

interface Scenario {
  readonly name: string
  readonly requests: ReadonlyArray<autocannon.Request>
}

let created = 0
const orderIds: Array<string> = []
const nextOrderBody = () => {
  const id = `bench-${run}-${created++}`
  orderIds.push(id)
  return JSON.stringify({ id, name: "bench order", status: "new" })
}
let processed = 0
let read = 0

const scenarios: ReadonlyArray<Scenario> = [
  {
    name: "POST /       create",
    requests: [{
      method: "POST",
      path: "/",
      headers: { "content-type": "application/json" },
      setupRequest: (request) => ({ ...request, body: nextOrderBody() })
    }]
  },
  {
    name: "GET /:id     get",
    requests: [{
      method: "GET",
      setupRequest: (request) => ({ ...request, path: `/${orderIds[read++ % orderIds.length]}` })
    }]
  },
  {
    name: "GET /?limit=100 list",
    requests: [{ method: "GET", path: "/?limit=100" }]
  },
  {
    name: "POST /:id    process",
    requests: [{
      method: "POST",
      setupRequest: (request) => ({ ...request, path: `/${orderIds[processed++ % orderIds.length]}` })
    }]
  }
]

console.log(`target ${target.url}, ${connections} connections, ${seconds} s per scenario`)
console.log("scenario               req/s   p50 ms  p99 ms  2xx      non-2xx  errors")
for (const scenario of scenarios) {
  const result = await autocannon({
    url: target.url,
    connections,
    duration: seconds,
    requests: [...scenario.requests]
  })
  const ok = result["2xx"]
  const other = result.non2xx
  console.log(
    [
      scenario.name.padEnd(20),
      result.requests.average.toFixed(0).padStart(7),
      String(result.latency.p50).padStart(8),
      String(result.latency.p99).padStart(7),
      String(ok).padStart(8),
      String(other).padStart(8),
      String(result.errors + result.timeouts).padStart(7)
    ].join(" ")
  )
}
await target.stop()
