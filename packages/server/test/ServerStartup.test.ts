import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type { AddressInfo } from "node:net"
import { createGuardedServer } from "../src/Http.js"

/** The guarded server listening on a free loopback port, closed at the end of the scope. */
const listening = Effect.acquireRelease(
  Effect.async<ReturnType<typeof createGuardedServer>>((resume) => {
    const server = createGuardedServer()
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
  }),
  (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
)

const ask = (server: ReturnType<typeof createGuardedServer>) =>
  Effect.promise(() =>
    fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/o-1`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
      signal: AbortSignal.timeout(5_000)
    })
  )

describe("the HTTP server between listening and serving", () => {
  it.scoped("answers 503 with Retry-After, as a problem document, while no handler is attached", () =>
    Effect.gen(function*() {
      const response = yield* ask(yield* listening)
      expect(response.status).toBe(503)
      expect(response.headers.get("retry-after")).toBe("1")
      expect(response.headers.get("content-type")).toBe("application/problem+json")
      expect(yield* Effect.promise(() => response.json())).toMatchObject({
        status: 503,
        _tag: "ServiceUnavailable",
        detail: "the server is starting or stopping; retry"
      })
    }))

  it.scoped("stays out of the way once the app's handler is attached, and answers again once it is detached", () =>
    Effect.gen(function*() {
      const server = yield* listening
      const handler = (_: unknown, response: { end: (body: string) => void }) => response.end("served")
      server.on("request", handler)
      const served = yield* ask(server)
      expect(served.status).toBe(200)
      expect(yield* Effect.promise(() => served.text())).toBe("served")
      server.off("request", handler)
      expect((yield* ask(server)).status).toBe(503)
    }))
})
