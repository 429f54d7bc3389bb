/**
 * `pnpm bench`: throughput and latency of the Orders API under load from this
 * machine, each figure beside a floor measured in the same run.
 *
 *   pnpm bench                 # the embedded program (in-memory adapters), started by the bench
 *   pnpm bench:native          # server.ts + processor.ts on fresh stores of the native stack
 *   pnpm bench:scale           # the scale sweep on the native stack
 *   BENCH_URL=http://127.0.0.1:8080 pnpm bench   # a server you started (BENCH_SERVER_PID for its RSS)
 *
 * Settings (environment): BENCH_CONCURRENCY (1,8,32,128), BENCH_SECONDS (4)
 * and BENCH_WARMUP_SECONDS (1) per step, BENCH_TARGET_WARMUP_SECONDS (5) once
 * the target is up, BENCH_SOAK_SECONDS (60, 0 skips), BENCH_SOAK_CONNECTIONS
 * (32), BENCH_SCALE_ORDERS (0,10000,50000,100000),
 * BENCH_SCALE_CONCURRENCY (32), BENCH_POLL_MILLIS (5), BENCH_FLOORS
 * (http,effect-http,mongo,postgres,kafka); the stack's addresses are MONGODB_URI,
 * DATABASE_URL and KAFKA_BROKERS. Prints progress on stderr and the tables on
 * stdout, and writes everything to bench/results/<start time>.json. Nothing
 * is asserted. Ctrl-C stops the programs and drops the stores it made.
 */
import { runCommand } from "@orders/infra/Program"
import { Console, DateTime, Effect, Exit, Option } from "effect"
import { measureFloors } from "./floors.js"
import { httpLoad, summary } from "./load.js"
import type { Report, Results } from "./report.js"
import { floorOf, machine, printReport, versions, writeReport } from "./report.js"
import { scaleSweep } from "./scale.js"
import { mixedRequests, OrderPool, runScenario, SCENARIOS, settle } from "./scenarios.js"
import type { FloorName } from "./settings.js"
import { FLOORS, Settings } from "./settings.js"
import { residentMegabytes, soak } from "./soak.js"
import { startTarget } from "./targets.js"

const native = process.argv.includes("--native")
const scaleOnly = process.argv.includes("--scale")

const progress = (line: string) => Console.error(line)

const main = Effect.gen(function*() {
  const settings = yield* Settings
  const startedAt = yield* DateTime.now
  const started = performance.now()
  const startMachine = machine()
  const window = (concurrency: number) => ({
    concurrency,
    warmupSeconds: settings.warmupSeconds,
    seconds: settings.seconds
  })
  const stackFloors = native || scaleOnly || Option.isSome(settings.url)
  const floorNames: ReadonlyArray<FloorName> = Option.getOrElse(
    settings.floors,
    () => scaleOnly ? ["mongo"] : stackFloors ? FLOORS : ["http", "effect-http"]
  )
  const floorConcurrency = scaleOnly ? [settings.scaleConcurrency] : settings.concurrency

  /** What the run measured so far: reported at the end, also when it ends early. */
  const results: Results = { floors: [], scenarios: [] }

  const run = Effect.gen(function*() {
    yield* progress(`measuring floors: ${floorNames.join(", ")}`)
    results.floors = yield* measureFloors(floorNames, floorConcurrency, window, progress)

    // The scale sweep runs the processor too: it decides on the appends it was delivered, reading nothing.
    const target = yield* startTarget(native || scaleOnly ? "native" : "embedded", settings)
    results.target = { kind: target.kind, url: target.url }
    yield* progress(`target ${target.kind} at ${target.url}`)
    const context = { url: target.url, pool: new OrderPool(), pollMillis: settings.pollMillis }
    if (Option.isSome(target.serverPid)) {
      results.rssAtStart = Option.getOrUndefined(yield* residentMegabytes(target.serverPid.value))
    }
    // A freshly started program compiles and connects on its first requests: not what the first step should measure.
    if (settings.targetWarmupSeconds > 0) {
      yield* progress(`warming the target up for ${settings.targetWarmupSeconds} s`)
      yield* httpLoad({ concurrency: 8, warmupSeconds: 0, seconds: settings.targetWarmupSeconds }, {
        url: target.url,
        requests: () => mixedRequests(context.pool)
      })
    }

    if (scaleOnly) {
      const store = yield* Option.match(target.eventStore, {
        onNone: () => Effect.dieMessage("the scale sweep fills the event store itself: run it without BENCH_URL"),
        onSome: Effect.succeed
      })
      results.scale = { concurrency: settings.scaleConcurrency, seedSeconds: 0, seededCommits: 0, points: [] }
      yield* scaleSweep(
        store,
        context,
        settings.scaleOrders,
        window(settings.scaleConcurrency),
        results.scale,
        progress
      )
      return
    }

    for (const scenario of SCENARIOS) {
      for (const concurrency of settings.concurrency) {
        // A process step may run as fast as the creates at its concurrency, or as the process step before it.
        const expectedPerSecond = Math.max(
          0,
          ...results.scenarios.filter((step) =>
            (step.scenario === "create" && step.concurrency === concurrency) || step.scenario === "process"
          ).map((step) => step.measurement.perSecond)
        )
        const measurement = yield* runScenario(scenario, context, window(concurrency), expectedPerSecond)
        const settleSeconds = yield* settle(scenario, context)
        yield* progress(`${scenario} c=${concurrency}: ${summary(measurement)}`)
        const floor = floorOf(scenario, concurrency, measurement, results.floors)
        results.scenarios.push({
          scenario,
          concurrency,
          measurement,
          settleSeconds,
          ...Option.match(floor, { onNone: () => ({}), onSome: (floor) => ({ floor }) })
        })
      }
    }

    if (settings.soakSeconds > 0) {
      yield* progress(`soak: ${settings.soakSeconds} s at ${settings.soakConnections} connections`)
      results.soak = yield* soak(
        target.url,
        context.pool,
        target.serverPid,
        settings.soakSeconds,
        settings.soakConnections
      )
    }
  })

  const finish = (ending: Report["ending"]) =>
    Effect.gen(function*() {
      const report: Report = {
        startedAt: DateTime.formatIso(startedAt),
        seconds: (performance.now() - started) / 1000,
        ending,
        ...results,
        settings: {
          ...settings,
          floors: floorNames,
          url: Option.getOrNull(settings.url),
          serverPid: Option.getOrNull(settings.serverPid),
          scaleOnly
        },
        machine: startMachine,
        loadAverageAfter: machine().loadAverage,
        versions: yield* versions
      }
      yield* Console.log(printReport(report))
      yield* Console.log(`\nwritten to ${yield* writeReport(report)}`)
    })

  yield* run.pipe(
    Effect.onExit((exit) =>
      finish(Exit.isSuccess(exit) ? "complete" : Exit.isInterrupted(exit) ? "interrupted" : "failed")
    )
  )
  return 0
})

runCommand(main.pipe(Effect.scoped))
