/**
 * Programs run as a process supervisor runs them (systemd's Restart=always):
 * started again whenever they exit, killed by the test or ended on their own.
 * The programs are built for that: a background loop that cannot go on ends
 * the program non-zero, for its supervisor to restart it.
 */
import { waitFor } from "@orders/domain/testing/fixtures"
import { Duration, Effect, Ref } from "effect"
import type { RunningProgram } from "../support/programs.js"
import { startProgram } from "../support/programs.js"

const restartDelay = Duration.millis(500)

export interface Supervised {
  readonly name: string
  /** SIGKILL of the running incarnation; the supervisor starts the next one. */
  readonly kill: Effect.Effect<void>
  /** SIGKILL, and no restart until `resume`: a program that stays down for a while. */
  readonly killAndHold: Effect.Effect<void>
  readonly resume: Effect.Effect<void>
  /** Waits (at most two minutes) until an incarnation is running and has printed every ready line. */
  readonly ready: Effect.Effect<void>
  /** Every incarnation's output so far, and how each ended. */
  readonly history: Effect.Effect<ReadonlyArray<Incarnation>>
}

export interface Incarnation {
  readonly output: string
  /** "running", "killed" (by the test) or how it ended on its own: the program gave up. */
  readonly end: string
}

const hasExited = (running: RunningProgram) => running.process.exitCode !== null || running.process.signalCode !== null

/** Once the program exited and its output is read to the end (what a crash printed last comes after "exit"). */
const closed = (running: RunningProgram) =>
  Effect.async<void>((resume) => {
    const { process } = running
    if (hasExited(running) && process.stdout?.closed !== false && process.stderr?.closed !== false) {
      return resume(Effect.void)
    }
    process.once("close", () => resume(Effect.void))
  })

/**
 * Runs `packages/<entry>` under supervision for the Scope; each incarnation
 * is stopped with SIGTERM when the Scope closes.
 */
export const supervise = (
  name: string,
  entry: string,
  env: Record<string, string>,
  readyLines: ReadonlyArray<string>
) =>
  Effect.gen(function*() {
    const current = yield* Ref.make<RunningProgram | undefined>(undefined)
    const ended = yield* Ref.make<ReadonlyArray<Incarnation>>([])
    const killed = new WeakSet<RunningProgram>()
    // Held by `killAndHold`: the next incarnation waits for the permit.
    const restarts = yield* Effect.makeSemaphore(1)

    const incarnation = Effect.scoped(Effect.gen(function*() {
      yield* restarts.withPermits(1)(Effect.void)
      const running = yield* startProgram(entry, env)
      yield* Ref.set(current, running)
      yield* closed(running)
      const end = killed.has(running)
        ? "killed"
        : `exited on its own (code ${running.process.exitCode}, signal ${running.process.signalCode})`
      if (!killed.has(running)) console.log(`[faults] ${name} ${end}; restarting it`)
      yield* Ref.update(ended, (all) => [...all, { output: running.output(), end }])
    }))
    yield* incarnation.pipe(Effect.zipRight(Effect.sleep(restartDelay)), Effect.forever, Effect.forkScoped)

    const isReady = Effect.map(
      Ref.get(current),
      (running) =>
        running !== undefined && !hasExited(running) && readyLines.every((line) => running.output().includes(line))
    )
    const kill = Effect.flatMap(Ref.get(current), (running) => {
      if (running === undefined) return Effect.void
      killed.add(running)
      return running.kill
    })
    return {
      name,
      kill,
      killAndHold: Effect.zipRight(restarts.take(1), kill),
      resume: restarts.release(1).pipe(Effect.asVoid),
      ready: waitFor(isReady, (ready) => ready, Duration.minutes(2)).pipe(
        Effect.filterOrDieMessage((ready) => ready, `${name} did not become ready within two minutes`),
        Effect.orDie,
        Effect.asVoid
      ),
      history: Effect.zipWith(
        Ref.get(ended),
        Ref.get(current),
        (all, running) =>
          running === undefined || hasExited(running) ? all : [...all, { output: running.output(), end: "running" }]
      )
    } satisfies Supervised
  })
