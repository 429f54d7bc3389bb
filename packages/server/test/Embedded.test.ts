import { describe, expect, it } from "@effect/vitest"
import { freePort } from "@orders/infra/testing/network"
import { Effect } from "effect"
import { expectOriginalFiveCalls, originalFiveCalls } from "./support/originalFiveCalls.js"
import { startProgram, waitForOutput } from "./support/programs.js"

describe("pnpm start (the embedded program, as a separate process)", () => {
  it.scopedLive(
    "serves the original five calls, new → processing → processed, and exits cleanly on SIGTERM",
    () =>
      Effect.gen(function*() {
        const port = yield* Effect.promise(freePort)
        const baseUrl = `http://127.0.0.1:${port}`
        const program = yield* startProgram("server/src/bin/embedded.ts", {
          PORT: String(port),
          PROCESSING_DELAY: "50 millis"
        })
        yield* waitForOutput(program, "Listening on")

        expectOriginalFiveCalls("someid", yield* originalFiveCalls(baseUrl, "someid"))
        expect(yield* program.stop).toBe(0)
      }),
    60_000
  )
})
