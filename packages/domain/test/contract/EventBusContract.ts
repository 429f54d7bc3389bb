import { expect, layer } from "@effect/vitest"
import type { Layer, Scope } from "effect"
import { Deferred, Duration, Effect, Ref, Schedule } from "effect"
import type { DeadLetter, DeliveryPolicy } from "../../src/EventBus.js"
import { EventBus } from "../../src/EventBus.js"
import { ServiceUnavailable } from "../../src/OrderError.js"
import type { OrderEventEnvelope } from "../../src/OrderEvent.js"
import { decodeEventJson } from "../../src/OrderEvent.js"
import { lifecycle, uniqueOrderId } from "../fixtures.js"

/** A policy that parks an event within a fraction of a second, for running the contract. */
export const fastDeliveryPolicy: DeliveryPolicy = {
  attempts: 3,
  backoff: Duration.millis(50),
  maxBackoff: Duration.millis(100)
}

/** The time `policy` waits between the first and the last attempt. */
const backoffTotal = (policy: DeliveryPolicy) =>
  Array.from(
    { length: policy.attempts - 1 },
    (_, retry) => Duration.min(Duration.times(policy.backoff, 2 ** retry), policy.maxBackoff)
  ).reduce(Duration.sum, Duration.zero)

/** How long a property waits for something a bus should do: a few seconds beyond the policy's backoffs. */
const patience = (policy: DeliveryPolicy) => Duration.sum(Duration.seconds(5), Duration.times(backoffTotal(policy), 2))

/** Time for a bus to commit what was just handled (a Kafka consumer may commit asynchronously). */
const settle = Duration.millis(250)

/**
 * Polls `get` until `done` holds or the policy's patience runs out, then
 * returns the last value: the caller's assertion says what is missing, within
 * seconds rather than at the test's timeout.
 */
const eventually = <A>(get: Effect.Effect<A>, done: (value: A) => boolean, policy: DeliveryPolicy) =>
  get.pipe(
    Effect.filterOrFail(done),
    Effect.retry(Schedule.spaced(Duration.millis(20)).pipe(Schedule.upTo(patience(policy)))),
    Effect.orElse(() => get)
  )

const newGroup = () => `g-${crypto.randomUUID()}`

const at = (event: OrderEventEnvelope) => `${event.streamId}@${event.version}`

/** Keeps the first occurrence of each entry, for asserting order despite at-least-once redelivery. */
const firstOccurrences = (entries: ReadonlyArray<string>) => [...new Set(entries)]

/** A journal of what the handlers did, in order. */
const makeJournal = Ref.make<ReadonlyArray<string>>([])
const note = (journal: Ref.Ref<ReadonlyArray<string>>, entry: string) => Ref.update(journal, (all) => [...all, entry])

/** One guarantee of the bus: passes, or fails with an assertion within seconds. */
export type EventBusProperty = (policy: DeliveryPolicy) => Effect.Effect<void, unknown, EventBus | Scope.Scope>

/**
 * An order (A) whose first event's handler always fails with `failure`, and
 * another (B) published after it: A's event is tried `policy.attempts` times,
 * then parked (a dead-letter subscriber receives it, with the failure's
 * message), then A's later events are handled; B is handled meanwhile.
 */
const parksAfterEveryAttempt =
  (failure: (message: string) => Effect.Effect<never, unknown>): EventBusProperty => (policy) =>
    Effect.gen(function*() {
      const bus = yield* EventBus
      const [stuck, other] = [lifecycle(uniqueOrderId("stuck")), lifecycle(uniqueOrderId("other"))]
      const stuckId = stuck[0]!.streamId
      const message = `simulated failure of ${stuckId}`
      const attempted = `${at(stuck[0]!)} attempted`
      const group = newGroup()
      const journal = yield* makeJournal
      const letters = yield* Ref.make<ReadonlyArray<DeadLetter>>([])
      yield* bus.subscribeDeadLetters(
        newGroup(),
        (letter) => letter.key === stuckId ? Ref.update(letters, (all) => [...all, letter]) : Effect.void
      )
      yield* bus.subscribe(group, (event) => {
        if (event.eventId === stuck[0]!.eventId) return note(journal, attempted).pipe(Effect.zipRight(failure(message)))
        return event.streamId === stuckId || event.streamId === other[0]!.streamId
          ? note(journal, at(event))
          : Effect.void
      })
      yield* bus.publish([...stuck, ...other])

      const parked = yield* eventually(Ref.get(letters), (all) => all.length > 0, policy)
      expect(parked.map(({ group, key }) => ({ group, key }))).toEqual([{ group, key: stuckId }])
      expect(parked[0]!.reason).toContain(message)
      expect((yield* decodeEventJson(parked[0]!.payload)).eventId).toBe(stuck[0]!.eventId)
      const happened = yield* eventually(
        Ref.get(journal),
        (all) => all.includes(at(stuck[2]!)) && all.includes(at(other[2]!)),
        policy
      )
      expect(yield* Ref.get(letters)).toHaveLength(1)
      // Exactly `attempts` tries, then the order's later events, in order.
      expect(happened.filter((entry) => entry.startsWith(stuckId))).toEqual([
        ...Array.from({ length: policy.attempts }, () => attempted),
        at(stuck[1]!),
        at(stuck[2]!)
      ])
      // The other order was not held up by the stuck one's retries.
      expect(happened.indexOf(at(other[2]!))).toBeLessThan(happened.lastIndexOf(attempted))
    })

/** The guarantees every event bus gives, each runnable on its own. */
export const eventBusProperties = {
  "delivers every event to every consumer group, in order per order": (policy) =>
    Effect.gen(function*() {
      const bus = yield* EventBus
      const orders = Array.from({ length: 5 }, () => lifecycle(uniqueOrderId("bus")))
      const ours = new Set(orders.map((events) => events[0]!.streamId as string))
      // Interleave the orders' events, as concurrent requests would.
      const published = [0, 1, 2].flatMap((i) => orders.map((events) => events[i]!))
      const journals = yield* Effect.forEach([newGroup(), newGroup()], (group) =>
        Effect.gen(function*() {
          const journal = yield* makeJournal
          yield* bus.subscribe(group, (event) => ours.has(event.streamId) ? note(journal, at(event)) : Effect.void)
          return journal
        }))
      yield* bus.publish(published)
      for (const journal of journals) {
        const handled = firstOccurrences(
          yield* eventually(Ref.get(journal), (all) => firstOccurrences(all).length >= published.length, policy)
        )
        expect([...handled].sort()).toEqual(published.map(at).sort())
        for (const events of orders) {
          expect(handled.filter((entry) => entry.startsWith(`${events[0]!.streamId}@`))).toEqual(events.map(at))
        }
      }
    }),

  "resumes a consumer group after the last event it finished": (policy) =>
    Effect.gen(function*() {
      const bus = yield* EventBus
      const group = newGroup()
      const [first, second] = [lifecycle(uniqueOrderId("resume")), lifecycle(uniqueOrderId("resume"))]
      const ours = new Set([first[0]!.streamId as string, second[0]!.streamId as string])
      const journal = yield* makeJournal
      const consume = bus.subscribe(group, (event) => ours.has(event.streamId) ? note(journal, at(event)) : Effect.void)

      yield* bus.publish(first)
      const handledFirst = yield* Effect.scoped(
        consume.pipe(
          Effect.zipRight(eventually(Ref.get(journal), (all) => all.includes(at(first[2]!)), policy)),
          // Closed only once the handlers have returned, so the bus may commit all of them.
          Effect.zipLeft(Effect.sleep(settle))
        )
      )
      expect(firstOccurrences(handledFirst)).toEqual(first.map(at))

      yield* Ref.set(journal, [])
      yield* bus.publish(second)
      const resumed = yield* Effect.scoped(
        consume.pipe(
          Effect.zipRight(eventually(Ref.get(journal), (all) => all.includes(at(second[2]!)), policy)),
          // A bus that replays would deliver the first order's events meanwhile, if not already.
          Effect.zipRight(Effect.sleep(settle)),
          Effect.zipRight(Ref.get(journal))
        )
      )
      // At least once allows redelivering only what was not finished: the first order was.
      expect(firstOccurrences(resumed)).toEqual(second.map(at))
    }),

  "retries a failing handler, and delivers the order's later events only after it": (policy) =>
    Effect.gen(function*() {
      const bus = yield* EventBus
      const events = lifecycle(uniqueOrderId("retry"))
      // The last attempt the policy allows succeeds.
      const failuresLeft = yield* Ref.make(policy.attempts - 1)
      const journal = yield* makeJournal
      yield* bus.subscribe(newGroup(), (event) =>
        event.streamId !== events[0]!.streamId ? Effect.void : Effect.gen(function*() {
          yield* note(journal, at(event))
          if (
            event.version === 2 && (yield* Ref.getAndUpdate(failuresLeft, (n) =>
                n - 1)) > 0
          ) {
            return yield* Effect.fail(new Error("simulated handler failure"))
          }
        }))
      yield* bus.publish(events)
      const handled = yield* eventually(Ref.get(journal), (all) =>
        all.includes(at(events[2]!)), policy)
      expect(handled.filter((entry) => entry === at(events[1]!)).length).toBeGreaterThanOrEqual(policy.attempts)
      expect(handled.indexOf(at(events[2]!))).toBeGreaterThan(handled.lastIndexOf(at(events[1]!)))
    }),

  "waits out a backing server that is down, past the policy's attempts, without parking the event": (policy) =>
    Effect.gen(function*() {
      const bus = yield* EventBus
      const events = lifecycle(uniqueOrderId("outage"))
      // Down for twice the attempts the policy gives a poison message.
      const failuresLeft = yield* Ref.make(policy.attempts * 2)
      const journal = yield* makeJournal
      const letters = yield* Ref.make(0)
      yield* bus.subscribeDeadLetters(
        newGroup(),
        (letter) => letter.key === events[0]!.streamId ? Ref.update(letters, (n) => n + 1) : Effect.void
      )
      yield* bus.subscribe(
        newGroup(),
        (event) =>
          event.streamId !== events[0]!.streamId ? Effect.void : Effect.gen(function*() {
            if (event.version === 2 && (yield* Ref.getAndUpdate(failuresLeft, (n) => n - 1)) > 0) {
              return yield* new ServiceUnavailable({ service: "read model", message: "down for a while" })
            }
            yield* note(journal, at(event))
          })
      )
      yield* bus.publish(events)
      const handled = yield* eventually(Ref.get(journal), (all) => all.includes(at(events[2]!)), {
        ...policy,
        attempts: policy.attempts * 3
      })
      expect(handled).toEqual(events.map(at))
      expect(yield* Ref.get(letters)).toBe(0)
    }),

  "parks an event whose handler keeps failing, then goes on with its order; other orders are not held up":
    parksAfterEveryAttempt((message) => Effect.fail(new Error(message))),

  "treats a handler defect like a failure: retried, then parked, and the consumer goes on": parksAfterEveryAttempt((
    message
  ) => Effect.die(new Error(message))),

  "handles different orders concurrently": (policy) =>
    Effect.gen(function*() {
      const bus = yield* EventBus
      const [blocked, free] = [lifecycle(uniqueOrderId("blocked")), lifecycle(uniqueOrderId("free"))]
      const freeHandled = yield* Deferred.make<void>()
      const journal = yield* makeJournal
      yield* bus.subscribe(newGroup(), (event) => {
        switch (event.streamId) {
          case blocked[0]!.streamId:
            // The blocked order's first event waits until the other order is done: a bus that handles
            // one order at a time never gets there.
            return (event.version === 1 ? Deferred.await(freeHandled) : Effect.void).pipe(
              Effect.zipRight(note(journal, at(event)))
            )
          case free[0]!.streamId:
            return note(journal, at(event)).pipe(
              Effect.zipRight(event.version === 3 ? Deferred.succeed(freeHandled, undefined) : Effect.void)
            )
          default:
            return Effect.void
        }
      })
      yield* bus.publish([...blocked, ...free])
      const handled = yield* eventually(Ref.get(journal), (all) => all.includes(at(blocked[2]!)), policy)
      expect(firstOccurrences(handled)).toEqual([...free.map(at), ...blocked.map(at)])
    })
} satisfies Record<string, EventBusProperty>

/**
 * The guarantees every event bus gives; run once per implementation with the
 * delivery policy its Layer was built with.
 */
export const eventBusContract = <E>(name: string, busLayer: Layer.Layer<EventBus, E>, policy: DeliveryPolicy) =>
  layer(busLayer, { excludeTestServices: true, timeout: Duration.minutes(2) })(`EventBus contract: ${name}`, (it) => {
    for (const [title, property] of Object.entries(eventBusProperties)) {
      // Room for two rounds of patience, so that a failing property reports its assertion, not a timeout.
      it.scoped(title, () => property(policy), Duration.toMillis(Duration.times(patience(policy), 3)))
    }
  })
