/**
 * Port: the event bus that carries appended events to the projector and the
 * processor.
 *
 * @since 0.1.0
 */
import type { Scope } from "effect"
import {
  Cause,
  Context,
  Data,
  Deferred,
  Duration,
  Effect,
  FiberSet,
  Layer,
  Metric,
  Option,
  Predicate,
  PubSub,
  Queue,
  Schedule,
  ScheduleDecision,
  Tracer
} from "effect"
import type { ServiceUnavailable } from "./OrderError.js"
import type { OrderEventEnvelope } from "./OrderEvent.js"
import { encodeEvent } from "./OrderEvent.js"
import { traced } from "./Tracing.js"

/** What a subscriber does with one event. A failure (or a defect) means "not handled". */
export type EventHandler<R> = (event: OrderEventEnvelope) => Effect.Effect<void, unknown, R>

/**
 * How a consumer treats an event whose handler fails: `attempts` tries in
 * all, `backoff` apart (doubling, at most `maxBackoff`); then the event is
 * parked in the dead-letter log with its cause, acknowledged, and the
 * consumer moves on. The same for every bus.
 */
export interface DeliveryPolicy {
  readonly attempts: number
  readonly backoff: Duration.Duration
  readonly maxBackoff: Duration.Duration
}

export const defaultDeliveryPolicy: DeliveryPolicy = {
  attempts: 8,
  backoff: Duration.millis(100),
  maxBackoff: Duration.seconds(5)
}

/** A message a consumer group gave up on: an event whose handler kept failing, or a message that is not an event. */
export interface DeadLetter {
  readonly group: string
  readonly reason: string
  /** The message's key: the order id. */
  readonly key: string | undefined
  /** The message as it was received (the encoded event, as JSON). */
  readonly payload: string
}

/** The consumer stopped for good (the client gave up): the program must end so that its supervisor restarts it. */
export class ConsumerStopped extends Data.TaggedError("ConsumerStopped")<{
  readonly group: string
  readonly cause: unknown
}> {
  override get message() {
    return `consumer group '${this.group}' stopped: ${
      this.cause instanceof Error ? this.cause.message : String(this.cause)
    }`
  }
}

/** A running consumer. */
export interface Subscription {
  /** Fails once the consumer has stopped for good; never succeeds. Interrupted with the Scope. */
  readonly stopped: Effect.Effect<never, ConsumerStopped>
  /** Whether the consumer is a member of its group now: false while it joins again, and once it stopped. */
  readonly joined: Effect.Effect<boolean>
}

export interface EventBusShape {
  /** Succeeds only once the bus has durably accepted every event (Kafka: acknowledged by all in-sync replicas). */
  readonly publish: (events: ReadonlyArray<OrderEventEnvelope>) => Effect.Effect<void, ServiceUnavailable>
  /**
   * Consumes as a member of the consumer group `group` for as long as the Scope
   * lives, starting where the group left off (a new group starts at the
   * beginning); returns once the member has joined. Every event is delivered
   * at least once, the events of one order in version order, those of
   * different orders concurrently. A failing handler is retried, then its
   * event parked, per the bus's `DeliveryPolicy`.
   */
  readonly subscribe: <R>(
    group: string,
    handler: EventHandler<R>
  ) => Effect.Effect<Subscription, ServiceUnavailable, R | Scope.Scope>
  /** Consumes the dead-letter log as the group `group`, like `subscribe`. */
  readonly subscribeDeadLetters: <R>(
    group: string,
    handler: (letter: DeadLetter) => Effect.Effect<void, unknown, R>
  ) => Effect.Effect<Subscription, ServiceUnavailable, R | Scope.Scope>
}

export class EventBus extends Context.Tag("orders/EventBus")<EventBus, EventBusShape>() {}

/**
 * Whether appended events and published messages carry the W3C trace context
 * of the work that made them. Off unless the program exports traces (the
 * programs' telemetry turns it on): the ids of a trace nobody records are noise.
 */
export class TraceContextPropagation extends Context.Reference<TraceContextPropagation>()(
  "orders/TraceContextPropagation",
  { defaultValue: () => false }
) {}

const traceparentFormat = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/
const zeros = /^0+$/
const traceIdFormat = /^[0-9a-f]{32}$/
const spanIdFormat = /^[0-9a-f]{16}$/

/** The W3C `traceparent` of `span`; none when its ids are not W3C ids (those of a disabled tracer). */
export const formatTraceparent = (span: Tracer.AnySpan): string | undefined =>
  traceIdFormat.test(span.traceId) && spanIdFormat.test(span.spanId) && !zeros.test(span.traceId) &&
    !zeros.test(span.spanId)
    ? `00-${span.traceId}-${span.spanId}-${span.sampled ? "01" : "00"}`
    : undefined

/**
 * The span a W3C `traceparent` names, as a remote parent; none for anything
 * that is not one (version `ff`, ids of zeros, extra fields on version `00`).
 */
export const parseTraceparent = (traceparent: string | undefined): Option.Option<Tracer.ExternalSpan> => {
  const match = traceparent === undefined ? null : traceparentFormat.exec(traceparent)
  if (match === null) return Option.none()
  const [, version = "", traceId = "", spanId = "", flags = "", extra] = match
  return version === "ff" || (version === "00" && extra !== undefined) || zeros.test(traceId) || zeros.test(spanId)
    ? Option.none()
    : Option.some(Tracer.externalSpan({ traceId, spanId, sampled: (Number.parseInt(flags, 16) & 1) === 1 }))
}

/** The `traceparent` of the current span, where trace context propagates. */
export const currentTraceparent: Effect.Effect<string | undefined> = Effect.gen(function*() {
  if (!(yield* TraceContextPropagation)) return undefined
  return Option.getOrUndefined(
    Option.flatMapNullable(yield* Effect.option(Effect.currentParentSpan), formatTraceparent)
  )
})

/**
 * Runs one delivery to a consumer in a span of its own: a child of the span
 * that published the message (`parent`), so that the consumer's work joins
 * the producer's trace; a root without one.
 */
export const withDeliverySpan =
  (name: string, parent: Option.Option<Tracer.AnySpan>, attributes: Record<string, unknown>) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    traced(
      name,
      Option.match(parent, {
        onNone: () => ({ kind: "consumer", attributes, root: true }),
        onSome: (span) => ({ kind: "consumer", attributes, parent: span })
      })
    )(self)

/** Handler attempts that failed and were tried again, by consumer group. */
export const handlerRetries = Metric.counter("orders_handler_retries_total", {
  description: "Failed handler attempts that were tried again, by consumer group",
  incremental: true
})

/** Messages a consumer group gave up on and parked in the dead-letter log, by group. */
export const parkedMessages = Metric.counter("orders_messages_parked_total", {
  description: "Messages parked in the dead-letter log, by consumer group",
  incremental: true
})

/** The outcome of delivering one event to a handler under a policy. */
export type Delivery =
  | { readonly _tag: "Handled" }
  | { readonly _tag: "Parked"; readonly reason: string }

/**
 * Runs `attempt` under `policy`, each failure (or defect) logged; after the
 * last attempt, `Parked` with the last cause rendered, logged as `whenParked`.
 * Shared by the events' and the dead letters' consumers.
 */
/** Doubling from `backoff`, at most `maxBackoff` apart. */
const backoffOf = (policy: DeliveryPolicy) =>
  Schedule.exponential(policy.backoff).pipe(Schedule.union(Schedule.spaced(policy.maxBackoff)))

/** The handler failed because a server it needs cannot be reached, not because of the event. */
const backingServerDown = (cause: Cause.Cause<unknown>) =>
  Option.exists(Cause.failureOption(cause), (error) => Predicate.isTagged(error, "ServiceUnavailable"))

const attemptUnder = <R>(
  attempt: Effect.Effect<void, unknown, R>,
  policy: DeliveryPolicy,
  group: string,
  whenParked: string
): Effect.Effect<Delivery, never, R> =>
  attempt.pipe(
    // A defect counts as a failure here: one bad order must not stop the consumer.
    Effect.catchAllCause((cause) => Cause.isInterruptedOnly(cause) ? Effect.interrupt : Effect.fail(cause)),
    Effect.tapError((cause) => Effect.logWarning("handler failed", cause)),
    // A backing server that is down (the read model during a failover) is no poison message: the event waits
    // for it, however long, without spending its attempts; parking it would leave its order behind for good.
    Effect.retry({ while: backingServerDown, schedule: backoffOf(policy) }),
    Effect.retry(
      backoffOf(policy).pipe(
        Schedule.intersect(Schedule.recurs(policy.attempts - 1)),
        Schedule.onDecision((_, decision) =>
          ScheduleDecision.isContinue(decision)
            ? Metric.increment(Metric.tagged(handlerRetries, "group", group))
            : Effect.void
        )
      )
    ),
    Effect.as<Delivery>({ _tag: "Handled" }),
    Effect.catchAll((cause) =>
      Effect.logError(whenParked, cause).pipe(
        Effect.zipRight(Metric.increment(Metric.tagged(parkedMessages, "group", group))),
        Effect.as<Delivery>({ _tag: "Parked", reason: Cause.pretty(cause).slice(0, 2_000) })
      )
    )
  )

/**
 * Runs `handler` on `event` under `policy`: retried with backoff, each failure
 * (or defect) logged; after the last attempt, `Parked` with the last cause,
 * rendered. A `ServiceUnavailable` is waited out without spending attempts. Interruption is not a failure: it propagates, and the event stays
 * unacknowledged.
 */
export const deliver = <R>(
  handler: EventHandler<R>,
  group: string,
  event: OrderEventEnvelope,
  policy: DeliveryPolicy
): Effect.Effect<Delivery, never, R> =>
  attemptUnder(
    Effect.suspend(() => handler(event)),
    policy,
    group,
    "event handler kept failing; the event is parked in the dead-letter log"
  ).pipe(
    Effect.annotateLogs({
      group,
      eventId: event.eventId,
      streamId: event.streamId,
      version: event.version,
      correlationId: event.metadata.correlationId
    })
  )

/** How many keys (orders) one consumer group of the in-memory bus works on at once. */
const memoryConcurrency = 64

/** Where a consumer group is in a topic: every offset below `committed` is done, and so is every one in `finished`. */
interface GroupProgress {
  committed: number
  readonly finished: Set<number>
}

/** An append-only log read by consumer groups: the in-memory counterpart of a Kafka topic. */
interface MemoryTopic<A> {
  readonly log: Array<A>
  readonly groups: Map<string, GroupProgress>
  /** Rings once per append, so that waiting consumers read on. */
  readonly appended: PubSub.PubSub<void>
}

const makeTopic = <A>(): Effect.Effect<MemoryTopic<A>> =>
  Effect.map(PubSub.sliding<void>(1), (appended) => ({ log: [], groups: new Map(), appended }))

const append = <A>(topic: MemoryTopic<A>, items: ReadonlyArray<A>): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (items.length === 0) return Effect.void
    topic.log.push(...items)
    return Effect.asVoid(PubSub.publish(topic.appended, undefined))
  })

/**
 * Consumes `topic` as `group` for as long as the Scope lives, from where the
 * group left off: the items of one key one after the other, those of different
 * keys concurrently. An item is done once `deliverOne` handled it or it was
 * parked with `park`; only done items are skipped by the group's next
 * subscription.
 */
const consume = <A, R>(
  topic: MemoryTopic<A>,
  group: string,
  keyOf: (item: A) => string,
  deliverOne: (item: A, offset: number) => Effect.Effect<Delivery, never, R>,
  park: (item: A, reason: string) => Effect.Effect<void>
): Effect.Effect<Subscription, never, R | Scope.Scope> =>
  Effect.gen(function*() {
    const progress = topic.groups.get(group) ?? { committed: 0, finished: new Set<number>() }
    topic.groups.set(group, progress)
    const wakeUps = yield* PubSub.subscribe(topic.appended)
    const workers = yield* FiberSet.make<void, never>()
    const workerSlots = yield* Effect.makeSemaphore(memoryConcurrency)
    /** Per key that has a worker, the offsets waiting for it, in log order. */
    const waiting = new Map<string, Array<number>>()

    const finish = (offset: number) =>
      Effect.sync(() => {
        progress.finished.add(offset)
        while (progress.finished.delete(progress.committed)) progress.committed++
      })

    const work = (key: string, queue: Array<number>) =>
      Effect.gen(function*() {
        for (let offset = queue.shift(); offset !== undefined; offset = queue.shift()) {
          const item = topic.log[offset]!
          // Once handled or parked, the item is done even if the Scope closes right now.
          yield* Effect.uninterruptibleMask((restore) =>
            restore(deliverOne(item, offset)).pipe(
              Effect.flatMap((delivery) => delivery._tag === "Parked" ? park(item, delivery.reason) : Effect.void),
              Effect.zipRight(finish(offset))
            )
          ).pipe(
            // Reached only if the handler interrupted itself (the Scope's interruption skips it): the key is stuck.
            Effect.catchAllCause((cause) =>
              Cause.isInterruptedOnly(cause)
                ? Effect.dieMessage(`the handler of '${key}' interrupted itself: its later items cannot be delivered`)
                : Effect.failCause(cause)
            )
          )
        }
        // No yield since the queue was found empty: the dispatcher cannot have added to it.
        waiting.delete(key)
      })

    const dispatch = Effect.gen(function*() {
      for (let next = progress.committed;; next++) {
        while (next >= topic.log.length) yield* Queue.take(wakeUps)
        if (progress.finished.has(next)) continue
        const key = keyOf(topic.log[next]!)
        const queue = waiting.get(key)
        if (queue !== undefined) {
          queue.push(next)
          continue
        }
        yield* workerSlots.take(1)
        const started = [next]
        waiting.set(key, started)
        yield* FiberSet.run(workers, work(key, started).pipe(Effect.ensuring(workerSlots.release(1))))
      }
    })

    const stopped = yield* Deferred.make<never, ConsumerStopped>()
    yield* Effect.addFinalizer(() => Deferred.interrupt(stopped))
    yield* Effect.raceFirst(dispatch, FiberSet.join(workers)).pipe(
      Effect.catchAllCause((cause) =>
        Effect.logError("consumer stopped", cause).pipe(
          Effect.zipRight(Deferred.fail(stopped, new ConsumerStopped({ group, cause: Cause.squash(cause) })))
        )
      ),
      Effect.annotateLogs({ group }),
      Effect.forkScoped
    )
    return { stopped: Deferred.await(stopped), joined: Effect.map(Deferred.isDone(stopped), (done) => !done) }
  })

/**
 * The bus kept in process memory, with the guarantees of the Kafka one (lost
 * when the process exits): one log, and per consumer group the events it is
 * done with. A group handles the events of different orders concurrently (up
 * to 64 orders at a time: a slow handler, like the processor's mock work,
 * holds up only its own order) and those of one order one after the other. An
 * event is done once handled or, after `policy.attempts` failures, parked in
 * the dead-letter log; a group that subscribes again gets every event it was
 * not done with, and none of those it was. A group has one member at a time
 * here: two live subscriptions of one group would both get every event.
 */
export const makeMemory = (policy: DeliveryPolicy = defaultDeliveryPolicy): Effect.Effect<EventBusShape> =>
  Effect.gen(function*() {
    const events = yield* makeTopic<OrderEventEnvelope>()
    const deadLetters = yield* makeTopic<DeadLetter>()
    return {
      publish: (batch) => append(events, batch),
      subscribe: (group, handler) =>
        consume(
          events,
          group,
          (event) => event.streamId,
          (event, offset) =>
            deliver(handler, group, event, policy).pipe(
              withDeliverySpan("EventBusMemory.handle", parseTraceparent(event.metadata.traceparent), { group, offset })
            ),
          (event, reason) =>
            append(deadLetters, [{ group, reason, key: event.streamId, payload: JSON.stringify(encodeEvent(event)) }])
        ),
      subscribeDeadLetters: (group, handler) =>
        consume(
          deadLetters,
          group,
          (letter) => letter.key ?? "",
          (letter) =>
            attemptUnder(
              Effect.suspend(() => handler(letter)),
              policy,
              group,
              "dead-letter handler kept failing; the letter is skipped"
            ).pipe(Effect.annotateLogs({ group, deadLetterOf: letter.group, key: letter.key })),
          // A dead letter has nowhere further to go: it stays in the log, for another group to read.
          () => Effect.void
        )
    }
  })

/** The in-memory bus with a given delivery policy (tests use a fast one). */
export const layerMemoryWith = (policy: DeliveryPolicy): Layer.Layer<EventBus> =>
  Layer.effect(EventBus, makeMemory(policy))

/** The in-memory bus with the default delivery policy. */
export const layerMemory: Layer.Layer<EventBus> = layerMemoryWith(defaultDeliveryPolicy)
