/** Scenario 2: the processor killed with SIGKILL in the middle of its mock work, and restarted. */
import { describe, expect, it } from "@effect/vitest"
import { waitFor } from "@orders/domain/testing/fixtures"
import { Duration, Effect } from "effect"
import { inProcessing } from "./Faults.js"
import { expectRecovered, instances, runScenario } from "./Scenario.js"

describe("fault 2: processor killed", () => {
  it.scopedLive("a processor killed while it holds requests gives each request one outcome", () =>
    Effect.gen(function*() {
      let inHandAtKill = 0
      const outcome = yield* runScenario({
        number: 2,
        scenario: "processor kill -9 during its work",
        servers: instances(2),
        processors: instances(1),
        env: { PROCESSING_DELAY: "2 seconds" },
        load: { orders: 40, spreadOver: "12 seconds", creators: 1, requesters: 2 },
        fault: ({ faultEnded, note, processors, stores }) =>
          Effect.gen(function*() {
            yield* Effect.sleep("5 seconds")
            const found = yield* waitFor(stores, (found) => inProcessing(found) > 0, Duration.seconds(20))
            yield* processors[0]!.kill
            yield* faultEnded
            inHandAtKill = inProcessing(found)
            yield* note(`killed the processor with ${inHandAtKill} requests in hand`)
          })
      })
      expectRecovered(outcome)
      // The kill hit the processor in the middle of its mock work.
      expect(inHandAtKill).toBeGreaterThan(0)
    }))
})
