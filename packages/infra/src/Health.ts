/**
 * Whether a program can do its work, as its health endpoints tell it: live
 * while it runs; ready once it has started and every check answers (its
 * stores, its consumers' membership of their groups).
 */
import type { Subscription } from "@orders/domain/EventBus"
import { EventStore } from "@orders/domain/EventStore"
import { OrderId } from "@orders/domain/Order"
import { OrderReadModel } from "@orders/domain/OrderReadModel"
import type { Scope } from "effect"
import { Context, Duration, Effect, Layer } from "effect"

/** Each check by name: `ok`, or what is wrong. */
export interface Readiness {
  readonly ready: boolean
  readonly checks: Readonly<Record<string, string>>
}

/** A check fails with what is wrong, in a few words. */
export type ReadinessCheck = Effect.Effect<void, string>

export interface HealthShape {
  /** Adds a check to readiness for as long as the Scope lives. */
  readonly register: (name: string, check: ReadinessCheck) => Effect.Effect<void, never, Scope.Scope>
  /** Runs every check at once, each for at most `checkTimeout`. */
  readonly readiness: Effect.Effect<Readiness>
}

/** A check that does not answer within this counts as failed: a probe must not hang. */
export const checkTimeout = Duration.seconds(2)

export const makeHealth = (): HealthShape => {
  const checks = new Map<string, ReadinessCheck>()
  const run = (check: ReadinessCheck) =>
    check.pipe(
      Effect.catchAllDefect((defect) => Effect.fail(defect instanceof Error ? defect.message : String(defect))),
      Effect.timeoutFail({
        duration: checkTimeout,
        onTimeout: () => `no answer within ${Duration.format(checkTimeout)}`
      }),
      Effect.match({ onFailure: (reason) => reason, onSuccess: () => "ok" })
    )
  return {
    register: (name, check) =>
      Effect.acquireRelease(
        Effect.sync(() => checks.set(name, check)),
        () => Effect.sync(() => checks.get(name) === check && checks.delete(name))
      ),
    readiness: Effect.suspend(() =>
      Effect.forEach([...checks], ([name, check]) => Effect.map(run(check), (result) => [name, result] as const), {
        concurrency: "unbounded"
      })
    ).pipe(
      Effect.map((results): Readiness => ({
        ready: results.every(([, result]) => result === "ok"),
        checks: Object.fromEntries(results)
      })),
      // A probe every few seconds is not work worth a trace.
      Effect.withTracerEnabled(false)
    )
  }
}

/**
 * The program's health checks. The programs get their own (see `Program.launch`);
 * a composition without one (a test) shares a process-wide one.
 */
export class Health extends Context.Reference<Health>()("orders/Health", { defaultValue: makeHealth }) {}

/** Readiness requires `subscription`'s consumer to be a member of `group`. */
export const requireMembership = (group: string, subscription: Subscription) =>
  Effect.flatMap(Health, (health) =>
    health.register(
      `consumer ${group}`,
      Effect.filterOrFail(subscription.joined, (joined) => joined, () => "not a member of its consumer group")
    ))

/** An order id no order needs: reading it asks the store a question with a known answer. */
const probeId = OrderId.make("readiness-probe")

/** Readiness requires the event store to answer. */
export const requireEventStore = Layer.scopedDiscard(Effect.gen(function*() {
  const store = yield* EventStore
  const health = yield* Health
  yield* health.register("eventStore", Effect.asVoid(Effect.mapError(store.read(probeId), (error) => error.message)))
}))

/** Readiness requires the read model to answer. */
export const requireReadModel = Layer.scopedDiscard(Effect.gen(function*() {
  const readModel = yield* OrderReadModel
  const health = yield* Health
  yield* health.register("readModel", Effect.asVoid(Effect.mapError(readModel.get(probeId), (error) => error.message)))
}))
