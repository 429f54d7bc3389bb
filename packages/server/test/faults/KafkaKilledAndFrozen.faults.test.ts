/** Scenario 4: Kafka killed with SIGKILL and restarted, then frozen with SIGSTOP for 20 s, under load. */
import { describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as PrivateStack from "./PrivateStack.js"
import { expectRecovered, instances, runScenario } from "./Scenario.js"

describe("fault 4: Kafka killed, then frozen", () => {
  it.scopedLive("commands go on while the broker is gone or frozen, and every event reaches the consumers", () =>
    Effect.gen(function*() {
      const outcome = yield* runScenario({
        number: 4,
        scenario: "Kafka SIGKILL + restart, SIGSTOP 20 s",
        servers: instances(2),
        processors: instances(1),
        load: { orders: 60, spreadOver: "40 seconds", creators: 2, requesters: 2 },
        fault: ({ faultEnded, note }) =>
          Effect.gen(function*() {
            yield* Effect.sleep("4 seconds")
            yield* PrivateStack.stop("kafka", "SIGKILL")
            yield* note("Kafka killed")
            yield* Effect.sleep("3 seconds")
            yield* PrivateStack.up
            yield* note("Kafka restarted")
            yield* Effect.sleep("3 seconds")
            yield* PrivateStack.signal("kafka", "SIGSTOP")
            yield* note("Kafka frozen")
            yield* Effect.sleep("20 seconds")
            yield* PrivateStack.signal("kafka", "SIGCONT")
            yield* faultEnded
            yield* note("Kafka thawed after 20 s")
          })
      })
      expectRecovered(outcome)
    }))
})
