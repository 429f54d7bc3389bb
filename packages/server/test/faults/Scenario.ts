/**
 * One fault scenario on the private stack: fresh stores, servers and
 * processors as supervised OS processes, a bounded load with the fault
 * injected meanwhile, then recovery, the stores' accounting, the operator's
 * consistency check, and the scenario's line in the summary table.
 */
import { expect } from "@effect/vitest"
import { waitFor } from "@orders/domain/testing/fixtures"
import { freePort } from "@orders/infra/testing/network"
import { freshStack } from "@orders/infra/testing/stack"
import { Array as Arr, Clock, Deferred, Duration, Effect, Ref, Schedule } from "effect"
import { spawn } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import type { Stores, Verdict } from "./Accounting.js"
import { converged, judge, readStores } from "./Accounting.js"
import type { LoadPlan, Sent } from "./Load.js"
import { runLoad } from "./Load.js"
import * as PrivateStack from "./PrivateStack.js"
import { clientEnv, root, stateDir } from "./PrivateStack.js"
import type { ScenarioResult } from "./Report.js"
import { recordResult } from "./Report.js"
import type { Supervised } from "./Supervisor.js"
import { supervise } from "./Supervisor.js"

/** What the fault of a scenario can reach while the load runs. */
export interface FaultContext {
  readonly servers: ReadonlyArray<Supervised>
  readonly processors: ReadonlyArray<Supervised>
  readonly urls: ReadonlyArray<string>
  readonly stores: Effect.Effect<Stores>
  /** The read model's PostgreSQL schema. */
  readonly schema: string
  /** Done once every command of the load was answered or given up. */
  readonly loadDone: Effect.Effect<void>
  /** Marks the end of the fault (the last call counts): recovery is timed from here. */
  readonly faultEnded: Effect.Effect<void>
  /** A line for the summary table's notes and the log. */
  readonly note: (line: string) => Effect.Effect<void>
}

export interface ScenarioSpec {
  readonly number: number
  readonly scenario: string
  /** Extra environment per instance (a skewed clock); their count is the number of instances. */
  readonly servers: ReadonlyArray<Record<string, string>>
  readonly processors: ReadonlyArray<Record<string, string>>
  /** Environment of every program (PROCESSING_DELAY…). */
  readonly env?: Record<string, string>
  readonly load: LoadPlan
  /** Runs beside the load; returns once the fault is over. */
  readonly fault: (context: FaultContext) => Effect.Effect<void, unknown>
}

export interface ScenarioOutcome {
  readonly result: ScenarioResult
  readonly sent: ReadonlyArray<Sent>
  readonly verdict: Verdict
  readonly stores: Stores
  readonly consistency: ConsistencyRun
}

/** What `check:consistency` answered: its exit code (null when it was killed) and what it printed. */
export interface ConsistencyRun {
  readonly code: number | null
  readonly output: string
}

/** Instances of each program: `n` of them with nothing extra. */
export const instances = (n: number): ReadonlyArray<Record<string, string>> => Array.from({ length: n }, () => ({}))

const recoveryLimit = Duration.seconds(90)

const checkConsistencyEntry = "packages/server/src/bin/check-consistency.ts"

/** `pnpm check:consistency --json` on the scenario's stores. */
const checkConsistency = (env: Record<string, string>) =>
  Effect.async<ConsistencyRun>((resume) => {
    const child = spawn(process.execPath, ["--import", "tsx", checkConsistencyEntry, "--json"], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 180_000
    })
    let output = ""
    child.stdout.on("data", (chunk) => (output += chunk))
    child.stderr.on("data", (chunk) => (output += chunk))
    child.once("exit", (code) => resume(Effect.succeed({ code, output })))
    return Effect.sync(() => child.kill("SIGKILL"))
  })

const noAnswerReasons: Record<string, string> = {
  refused: "connection refused",
  reset: "connection lost",
  aborted: "client hung up",
  timeout: "no answer within a minute"
}

/** "12 connection refused, 3 client hung up" */
const breakdown = (unanswered: ReadonlyArray<Sent>) =>
  Object.entries(Arr.groupBy(unanswered, (command) => String(command.status)))
    .map(([reason, commands]) => `${commands.length} ${noAnswerReasons[reason]}`)
    .join(", ")

const count = (sent: ReadonlyArray<Sent>, predicate: (command: Sent) => boolean) => sent.filter(predicate).length

const status = (command: Sent) => typeof command.status === "number" ? command.status : 0

export const runScenario = (spec: ScenarioSpec) =>
  Effect.gen(function*() {
    const log = (line: string) => Effect.sync(() => console.log(`[faults ${spec.number}] ${line}`))
    const stack = yield* freshStack
    const tag = crypto.randomUUID().slice(0, 8)
    const env = {
      ...clientEnv,
      ...stack.env,
      PROJECTOR_GROUP: `faults.${spec.number}.${tag}.projector`,
      PROCESSOR_GROUP: `faults.${spec.number}.${tag}.processor`,
      ...spec.env
    }
    const ports = yield* Effect.forEach(spec.servers, () => Effect.promise(freePort))
    const servers = yield* Effect.forEach(spec.servers, (extra, i) =>
      supervise(`server-${i + 1}`, "server/src/bin/server.ts", { ...env, ...extra, PORT: String(ports[i]) }, [
        "Listening on",
        "projector consuming"
      ]))
    const processors = yield* Effect.forEach(spec.processors, (extra, i) =>
      supervise(`processor-${i + 1}`, "processor/src/bin/processor.ts", { ...env, ...extra }, [
        "processor consuming"
      ]))
    const everyProgram = [...servers, ...processors]
    yield* Effect.forEach(everyProgram, (program) =>
      program.ready, { concurrency: "unbounded", discard: true })
    const urls = ports.map((port) =>
      `http://127.0.0.1:${port}`
    )
    const stores = readStores(stack.database, stack.schema)
    yield* log(`${servers.length} servers and ${processors.length} processors ready; load and fault begin`)

    // Whatever the fault did and however the scenario ends, the next one finds the private stack up and running.
    yield* Effect.addFinalizer(() =>
      PrivateStack.signal("kafka", "SIGCONT").pipe(Effect.ignore, Effect.zipRight(PrivateStack.up), Effect.orDie)
    )
    const notes = yield* Ref.make<ReadonlyArray<string>>([])
    const faultEndedAt = yield* Ref.make(0)
    const loadDone = yield* Deferred.make<void>()
    const started = yield* Clock.currentTimeMillis
    const elapsed = Effect.map(Clock.currentTimeMillis, (now) =>
      ((now - started) / 1000).toFixed(1))
    const context: FaultContext = {
      servers,
      processors,
      urls,
      stores,
      schema: stack.schema,
      loadDone: Deferred.await(loadDone),
      faultEnded: Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Ref.set(faultEndedAt, now)),
      note: (line) =>
        Effect.zipRight(
          Ref.update(notes, (all) => [...all, line]),
          Effect.flatMap(elapsed, (at) => log(`+${at} s ${line}`))
        )
    }
    const [load] = yield* Effect.all([
      runLoad(`f${spec.number}`, urls, spec.load).pipe(Effect.tap(() => Deferred.succeed(loadDone, undefined))),
      spec.fault(context).pipe(
        Effect.orDie,
        Effect.zipRight(Effect.flatMap(Clock.currentTimeMillis, (now) => Ref.update(faultEndedAt, (at) => at || now)))
      )
    ], { concurrency: "unbounded" })
    yield* log(`load done (${load.length} commands), fault over at +${yield* elapsed} s; waiting for recovery`)

    const recovered = converged(yield* waitFor(stores, converged, recoveryLimit))
    const recoverySeconds = recovered
      ? ((yield* Clock.currentTimeMillis) - (yield* Ref.get(faultEndedAt))) / 1000
      : undefined
    // Then, once recovered, one fresh order through each server: a consumer that hangs without exiting would
    // leave it processing. (A scenario that did not recover is judged as it stands.)
    const afterwards = recovered
      ? yield* runLoad(`f${spec.number}-after`, urls, {
        orders: urls.length,
        spreadOver: Duration.zero,
        creators: 1,
        requesters: 1
      })
      : []
    const final = recovered ? yield* waitFor(stores, converged, recoveryLimit) : yield* stores
    const sent = [...load, ...afterwards]
    const verdict = judge(final, sent)

    // Normal lag (a consumer group still rejoining after the fault) is not a finding: once the stores agree, the
    // check runs until it passes, a minute at most.
    const checks = yield* Ref.make(0)
    const consistency = yield* checkConsistency(env).pipe(
      Effect.tap(() => Ref.update(checks, (n) => n + 1)),
      Effect.repeat(
        Schedule.spaced(Duration.seconds(2)).pipe(
          Schedule.upTo(Duration.minutes(1)),
          Schedule.whileInput((run: ConsistencyRun) => recovered && run.code !== 0),
          Schedule.passthrough
        )
      )
    )
    const history = yield* Effect.forEach(everyProgram, (program) =>
      Effect.map(program.history, (incarnations) => ({ name: program.name, incarnations })))
    const logDir = `${stateDir}/scenarios/${spec.number}`
    mkdirSync(logDir, { recursive: true })
    for (const { incarnations, name } of history) {
      incarnations.forEach((incarnation, i) =>
        writeFileSync(`${logDir}/${name}.${i + 1}.log`, `${incarnation.output}\n[${incarnation.end}]\n`)
      )
    }
    writeFileSync(`${logDir}/verdict.json`, JSON.stringify({ verdict, consistency, sent }, null, 2))
    const gaveUp = history.flatMap(({ incarnations, name }) =>
      incarnations.filter((incarnation) =>
        incarnation.end.startsWith("exited")
      ).map(() => name)
    )
    const unknown = verdict.outcomeUnknown
    const unavailable = count(sent, (command) => command.status === 503)
    const unanswered = sent.filter((command) => typeof command.status !== "number")
    const result: ScenarioResult = {
      number: spec.number,
      scenario: spec.scenario,
      sent: sent.length,
      accepted: count(sent, (command) => status(command) >= 200 && status(command) < 300),
      refused: count(sent, (command) => status(command) >= 400 && status(command) < 500),
      unavailable,
      unanswered: unanswered.length,
      events: verdict.events,
      rows: verdict.rows,
      lost: verdict.lost.length,
      duplicated: verdict.duplicated.length,
      stuck: verdict.stuck.length,
      recoverySeconds,
      notes: [
        ...(yield* Ref.get(notes)),
        ...(unavailable > 0
          ? [
            `503s: ${unavailable - unknown.answered} ServiceUnavailable, ${unknown.answered} AppendOutcomeUnknown ` +
            `(${unknown.landed} of which landed)`
          ]
          : []),
        ...(unanswered.length > 0 ? [`no answer: ${breakdown(unanswered)}`] : []),
        ...(gaveUp.length > 0 ? [`exited on their own and restarted: ${gaveUp.join(", ")}`] : []),
        `check:consistency exit ${consistency.code} (run ${yield* Ref.get(checks)})`
      ]
    }
    recordResult(result)
    yield* log(JSON.stringify(result))
    return { result, sent, verdict, stores: final, consistency } satisfies ScenarioOutcome
  })

/**
 * What every scenario must end with: nothing lost, duplicated or stuck, the
 * stores in agreement, no answer but the documented ones (no 500, no hang),
 * and the operator's consistency check finding nothing.
 */
export const expectRecovered = ({ consistency, result, sent, verdict }: ScenarioOutcome) => {
  expect(verdict.lost).toEqual([])
  expect(verdict.duplicated).toEqual([])
  expect(verdict.stuck).toEqual([])
  expect(result.recoverySeconds).toBeDefined()
  expect(sent.filter((command) => status(command) >= 500 && command.status !== 503)).toEqual([])
  expect(sent.filter((command) => command.status === "timeout")).toEqual([])
  expect(consistency.code, consistency.output).toBe(0)
}
