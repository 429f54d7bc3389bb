/**
 * Scenario 9: hundreds of conflicting commands on a few orders, through
 * three servers: exactly one writer wins each transition, the others get 409.
 * Half the processing fails, so later waves of requests find new transitions
 * to race for.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type { CommandKind } from "./Load.js"
import { expectRecovered, instances, runScenario } from "./Scenario.js"

describe("fault 9: conflicting commands", () => {
  it.scopedLive("of many concurrent writers exactly one wins each transition", () =>
    Effect.gen(function*() {
      const outcome = yield* runScenario({
        number: 9,
        scenario: "hundreds of conflicting commands on 5 orders",
        servers: instances(3),
        processors: instances(1),
        env: { PROCESSING_DELAY: "300 millis", PROCESSING_FAILURE_RATE: "0.5" },
        load: {
          orders: 5,
          spreadOver: "1 second",
          creators: 20,
          requesters: 30,
          requestWaves: { count: 3, pause: "2 seconds" }
        },
        fault: ({ loadDone }) => loadDone
      })
      expectRecovered(outcome)
      for (const [orderId, events] of outcome.stores.streams) {
        const commands = outcome.sent.filter((command) => command.orderId === orderId)
        const won = (kind: CommandKind) =>
          commands.filter((command) => command.kind === kind && (command.status === 201 || command.status === 202))
        // One winner per transition: as many accepted commands as the store has transitions of that kind.
        expect(won("create")).toHaveLength(1)
        expect(won("process")).toHaveLength(events.filter((event) => event.type === "OrderProcessingRequested").length)
        // Every other writer was refused with 409.
        expect(commands.filter((command) => command.status !== 201 && command.status !== 202 && command.status !== 409))
          .toEqual([])
      }
    }))
})
