/** Scenario 1: a server killed with SIGKILL at three random moments under load, restarted each time. */
import { describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { killAtRandom } from "./Faults.js"
import { expectRecovered, instances, runScenario } from "./Scenario.js"

describe("fault 1: server killed", () => {
  it.scopedLive("three SIGKILLs of a server under load lose, duplicate and strand nothing", () =>
    Effect.gen(function*() {
      const outcome = yield* runScenario({
        number: 1,
        scenario: "server kill -9 ×3",
        servers: instances(2),
        processors: instances(1),
        load: { orders: 50, spreadOver: "20 seconds", creators: 2, requesters: 2 },
        fault: (context) => killAtRandom(context, context.servers, 3, "5 seconds")
      })
      expectRecovered(outcome)
    }))
})
