/** Scenario 8: three servers and two processors under load, four of them killed with SIGKILL at random. */
import { describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { killAtRandom } from "./Faults.js"
import { expectRecovered, instances, runScenario } from "./Scenario.js"

describe("fault 8: random kills among several instances", () => {
  it.scopedLive("several instances of each program, killed at random, agree at the end", () =>
    Effect.gen(function*() {
      const outcome = yield* runScenario({
        number: 8,
        scenario: "3 servers + 2 processors, 4 random kills",
        servers: instances(3),
        processors: instances(2),
        env: { PROCESSING_DELAY: "1 second" },
        load: { orders: 60, spreadOver: "25 seconds", creators: 2, requesters: 3 },
        fault: (context) => killAtRandom(context, [...context.servers, ...context.processors], 4, "4 seconds")
      })
      expectRecovered(outcome)
    }))
})
