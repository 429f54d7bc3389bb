/**
 * Scenario 10: instances whose clocks disagree by twenty minutes (libfaketime
 * moves the wall clock of one server and one processor ten minutes ahead, and
 * of another pair ten minutes behind), with the skewed servers killed once
 * each. The design uses time only to schedule the outbox relay (a marker is
 * due at the writer's now + grace; an orphan is put off), never to decide
 * whether something is published.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync } from "node:fs"
import { expectRecovered, runScenario } from "./Scenario.js"

const libfaketime = `/usr/lib/${process.arch === "arm64" ? "aarch64" : "x86_64"}-linux-gnu/faketime/libfaketime.so.1`

/** The environment that shifts a program's wall clock (not its monotonic clock, which no two machines share anyway). */
const clockOff = (offset: string) => ({
  LD_PRELOAD: libfaketime,
  FAKETIME: offset,
  FAKETIME_DONT_FAKE_MONOTONIC: "1"
})

/** The first log timestamp of a program's output, in epoch milliseconds. */
const firstTimestamp = (output: string) => Date.parse(/timestamp=(\S+)/.exec(output)?.[1] ?? "")

describe("fault 10: skewed clocks", () => {
  it.scopedLive("instances ten minutes ahead and behind lose, duplicate and strand nothing", () =>
    Effect.gen(function*() {
      expect(existsSync(libfaketime), `${libfaketime} is missing: apt-get install faketime`).toBe(true)
      const skews: Array<number> = []
      const outcome = yield* runScenario({
        number: 10,
        scenario: "clocks +10 min / -10 min / exact",
        servers: [clockOff("+10m"), clockOff("-10m"), {}],
        processors: [clockOff("+10m"), clockOff("-10m")],
        load: { orders: 50, spreadOver: "20 seconds", creators: 2, requesters: 2 },
        fault: ({ faultEnded, note, servers }) =>
          Effect.gen(function*() {
            for (const server of servers) {
              const [incarnation] = yield* server.history
              // `|| 0`: an exact clock rounds to -0, which is not 0 to toEqual.
              skews.push(Math.round((firstTimestamp(incarnation!.output) - Date.now()) / 60_000) || 0)
            }
            yield* note(`server clocks off by ${skews.join(", ")} min`)
            for (const server of servers.slice(0, 2)) {
              yield* Effect.sleep("5 seconds")
              yield* server.kill
              yield* faultEnded
              yield* note(`killed ${server.name}`)
            }
          })
      })
      expectRecovered(outcome)
      // The clocks really were off: the servers' first log lines are ten minutes ahead, behind, and on time.
      expect(skews).toEqual([10, -10, 0])
    }))
})
