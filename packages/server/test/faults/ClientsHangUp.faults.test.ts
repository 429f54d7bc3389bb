/** Scenario 7: clients that hang up at random moments in the middle of their requests. */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { expectRecovered, instances, runScenario } from "./Scenario.js"

describe("fault 7: clients hang up", () => {
  it.scopedLive("a request abandoned by its client is applied entirely or not at all", () =>
    Effect.gen(function*() {
      const outcome = yield* runScenario({
        number: 7,
        scenario: "clients hang up mid-request",
        servers: instances(2),
        processors: instances(1),
        load: {
          orders: 60,
          spreadOver: "12 seconds",
          creators: 2,
          requesters: 3,
          hangUps: { share: 0.7, within: "100 millis" }
        },
        fault: ({ loadDone }) => loadDone
      })
      expectRecovered(outcome)
      expect(outcome.sent.filter((command) => command.status === "aborted").length).toBeGreaterThan(0)
    }))
})
