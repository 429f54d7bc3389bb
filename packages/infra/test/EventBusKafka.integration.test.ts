import { afterAll, describe, expect, it, layer } from "@effect/vitest"
import type { DeadLetter, DeliveryPolicy } from "@orders/domain/EventBus"
import { ConsumerStopped, EventBus } from "@orders/domain/EventBus"
import { ServiceUnavailable } from "@orders/domain/OrderError"
import { OrderProcessingRequested } from "@orders/domain/OrderEvent"
import { eventBusContract, fastDeliveryPolicy } from "@orders/domain/testing/contract/EventBusContract"
import { envelope, lifecycle, uniqueOrderId, waitFor } from "@orders/domain/testing/fixtures"
import { Deferred, Duration, Effect, Exit, Fiber, Layer, Option, Ref, Scope, TestClock, TestContext } from "effect"
import type { AddressInfo, Server, Socket } from "node:net"
import { createServer } from "node:net"
import * as EventBusKafka from "../src/EventBusKafka.js"
import { StartupError } from "../src/Startup.js"
import { deleteTopics, produceRaw, readTopic } from "./support/kafka.js"
import { kafkaBrokers } from "./support/stack.js"

const run = crypto.randomUUID().slice(0, 8)
// Fresh topics per run: a new group reads its topic from the beginning, and
// must not wade through earlier runs' events (or this file's malformed ones).
const contractTopic = `orders.events.test-${run}`
const adapterTopic = `orders.events.test-${run}-adapter`
/** One partition: the messages of every order share it, in the order they were written. */
const singleTopic = `orders.events.test-${run}-single`
/** Two deployments' topics, read by one group name. */
const sharedGroupTopics = [`orders.events.test-${run}-a`, `orders.events.test-${run}-b`]
const options = (
  topic: string,
  more: Partial<EventBusKafka.EventBusKafkaOptions> = {}
): EventBusKafka.EventBusKafkaOptions => ({
  brokers: kafkaBrokers,
  clientId: "orders-test",
  topic,
  partitions: 3,
  deliveryPolicy: fastDeliveryPolicy,
  ...more
})

afterAll(() =>
  Effect.runPromise(
    deleteTopics(
      [contractTopic, adapterTopic, singleTopic, ...sharedGroupTopics].flatMap((topic) => [topic, `${topic}.dlq`])
    )
  )
)

eventBusContract("Kafka", EventBusKafka.layer(options(contractTopic)), fastDeliveryPolicy)

describe("EventBusKafka with one group name on two topics", () => {
  it.scopedLive(
    "gives each member the partitions of its own topic only: every event of both is handled",
    () =>
      Effect.gen(function*() {
        const group = `g-${crypto.randomUUID()}`
        const journal = yield* Ref.make<ReadonlyArray<string>>([])
        const published = yield* Effect.forEach(sharedGroupTopics, (topic) =>
          Effect.gen(function*() {
            const bus = yield* EventBusKafka.make(options(topic))
            yield* bus.subscribe(group, (event) => Ref.update(journal, (all) => [...all, `${topic}/${event.streamId}`]))
            const events = Array.from({ length: 9 }, () => lifecycle(uniqueOrderId("shared"), 1)[0]!)
            yield* bus.publish(events)
            return events.map((event) => `${topic}/${event.streamId}`)
          }))
        const expected = published.flat()
        const handled = yield* waitFor(Ref.get(journal), (all) => expected.every((entry) => all.includes(entry)))
        expect([...new Set(handled)].sort()).toEqual([...expected].sort())
      }),
    90_000
  )
})

type Journal = Ref.Ref<ReadonlyArray<string>>
const note = (journal: Journal, entry: string) => Ref.update(journal, (all) => [...all, entry])
const at = (event: { readonly streamId: string; readonly version: number }) => `${event.streamId}@${event.version}`
const newGroup = () => `g-${crypto.randomUUID()}`

layer(EventBusKafka.layer(options(adapterTopic)), { excludeTestServices: true, timeout: Duration.minutes(1) })(
  "EventBusKafka",
  (it) => {
    it.scoped("delivers each order's events in version order while the topic's partitions run concurrently", () =>
      Effect.gen(function*() {
        const bus = yield* EventBus
        const orders = Array.from({ length: 12 }, () => lifecycle(uniqueOrderId("ordered")))
        const ours = new Set(orders.map((events) => events[0]!.streamId as string))
        const published = [0, 1, 2].flatMap((i) => orders.map((events) => events[i]!))
        const journal = yield* Ref.make<ReadonlyArray<string>>([])
        yield* bus.subscribe(newGroup(), (event) =>
          ours.has(event.streamId)
            // Uneven handling times, so that orders overtake one another.
            ? Effect.sleep(Duration.millis(Math.random() * 20)).pipe(Effect.zipRight(note(journal, at(event))))
            : Effect.void)
        yield* Effect.forEach(published, (event) => bus.publish([event]), { discard: true, concurrency: 4 })

        const handled = yield* waitFor(Ref.get(journal), (all) => all.length >= published.length)
        expect(handled.length).toBe(published.length)
        for (const events of orders) {
          expect(handled.filter((entry) => entry.startsWith(`${events[0]!.streamId}@`))).toEqual(events.map(at))
        }
        const onTopic = (yield* readTopic(
          adapterTopic,
          (all) => all.filter((record) => ours.has(record.key ?? "")).length >= published.length
        )).filter((record) => ours.has(record.key ?? ""))
        expect(new Set(onTopic.map((record) => record.partition)).size).toBeGreaterThan(1)
        // Keyed by order, each record with the headers other programs route by.
        const first = onTopic.find((record) => record.key === orders[0]![0]!.streamId)!
        expect(first.headers).toEqual({
          eventType: "OrderCreated",
          eventId: orders[0]![0]!.eventId,
          correlationId: orders[0]![0]!.metadata.correlationId
        })
      }))

    it.scoped("sends an undecodable message to the dead-letter topic, with the reason, and goes on", () =>
      Effect.gen(function*() {
        const bus = yield* EventBus
        const orderId = uniqueOrderId("dlq")
        const group = newGroup()
        const journal = yield* Ref.make<ReadonlyArray<string>>([])
        const letters = yield* Ref.make<ReadonlyArray<DeadLetter>>([])
        yield* bus.subscribeDeadLetters(
          newGroup(),
          (letter) => letter.key === orderId ? Ref.update(letters, (all) => [...all, letter]) : Effect.void
        )
        yield* bus.subscribe(group, (event) => event.streamId === orderId ? note(journal, at(event)) : Effect.void)
        // Same key as the order: ahead of its event in the same partition.
        const malformed = ["not json", JSON.stringify({ eventId: "not-a-uuid", type: "OrderCreated" })]
        yield* produceRaw(adapterTopic, malformed.map((value) => ({ key: orderId, value })))
        const [created] = lifecycle(orderId, 1)
        yield* bus.publish([created!])

        expect(yield* waitFor(Ref.get(journal), (all) => all.length >= 1)).toEqual([at(created!)])
        const parked = yield* waitFor(Ref.get(letters), (all) => all.length >= 2)
        expect(parked.map((letter) => letter.payload)).toEqual(malformed)
        for (const letter of parked) {
          expect(letter.group).toBe(group)
          expect(letter.reason).toMatch(/\S/)
        }
        const raw = (yield* readTopic(
          `${adapterTopic}.dlq`,
          (all) => all.filter((record) => record.key === orderId).length >= 2
        )).filter((record) => record.key === orderId)
        for (const record of raw) {
          expect(record.headers.group).toBe(group)
          expect(record.headers.sourceTopic).toBe(adapterTopic)
          expect(record.headers.sourcePartition).toMatch(/^\d+$/)
          expect(record.headers.sourceOffset).toMatch(/^\d+$/)
        }
      }))

    it.scoped("fails a publish the broker refuses with ServiceUnavailable, and publishes again afterwards", () =>
      Effect.gen(function*() {
        const bus = yield* EventBus
        const orderId = uniqueOrderId("refused")
        const journal = yield* Ref.make<ReadonlyArray<string>>([])
        yield* bus.subscribe(newGroup(), (event) => event.streamId === orderId ? note(journal, at(event)) : Effect.void)
        // One batch (one key, one partition) over the broker's 1 MB message.max.bytes.
        const tooLarge = Array.from(
          { length: 6_000 },
          (_, i) => envelope(i + 1, OrderProcessingRequested.make({ orderId }))
        )
        const error = yield* bus.publish(tooLarge).pipe(Effect.flip)
        expect(error).toBeInstanceOf(ServiceUnavailable)
        expect(error.service).toBe("Kafka")

        const events = lifecycle(orderId)
        yield* bus.publish(events)
        expect(yield* waitFor(Ref.get(journal), (all) => all.length >= 3)).toEqual(events.map(at))
      }))

    it.effect(
      "keeps a member in its group while a handler works for longer than the session timeout",
      () =>
        Effect.gen(function*() {
          const bus = yield* EventBus
          const orderId = uniqueOrderId("slow")
          const journal = yield* Ref.make<ReadonlyArray<string>>([])
          // Without heartbeats meanwhile, the broker would drop the member after 6 s and the rebalance would
          // interrupt the handler, whose event would then be delivered again.
          yield* bus.subscribe(newGroup(), (event) =>
            event.streamId !== orderId ? Effect.void : note(journal, `${at(event)} started`).pipe(
              Effect.zipRight(Effect.sleep(Duration.seconds(8))),
              Effect.zipRight(note(journal, `${at(event)} finished`)),
              Effect.onInterrupt(() =>
                note(journal, `${at(event)} interrupted`)
              )
            ))
          const [created] = lifecycle(orderId, 1)
          yield* bus.publish([created!])
          yield* waitFor(Ref.get(journal), (all) => all.some((entry) => entry.endsWith("finished")))
          expect(yield* Ref.get(journal)).toEqual([`${at(created!)} started`, `${at(created!)} finished`])
        }).pipe(
          Effect.scoped,
          Effect.provide(EventBusKafka.layer(options(adapterTopic, { sessionTimeout: "6 seconds" })))
        ),
      30_000
    )
  }
)

/** A policy slow enough for other orders to be seen flowing between its attempts. */
const patientPolicy: DeliveryPolicy = {
  attempts: 3,
  backoff: Duration.millis(400),
  maxBackoff: Duration.millis(400)
}

layer(
  EventBusKafka.layer(options(singleTopic, { partitions: 1, deliveryPolicy: patientPolicy })),
  { excludeTestServices: true, timeout: Duration.minutes(1) }
)("EventBusKafka on one partition", (it) => {
  it.scoped("parks a poison order after the policy's attempts while another order of its partition flows", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus
      const [poison, healthy] = [lifecycle(uniqueOrderId("poison")), lifecycle(uniqueOrderId("healthy"))]
      const poisonId = poison[0]!.streamId
      const journal = yield* Ref.make<ReadonlyArray<string>>([])
      const letters = yield* Ref.make<ReadonlyArray<DeadLetter>>([])
      yield* bus.subscribeDeadLetters(
        newGroup(),
        (letter) => letter.key === poisonId ? Ref.update(letters, (all) => [...all, letter]) : Effect.void
      )
      yield* bus.subscribe(newGroup(), (event) => {
        if (event.streamId === poisonId && event.version === 1) {
          return note(journal, "poison attempted").pipe(Effect.zipRight(Effect.fail(new Error("poison"))))
        }
        return event.streamId === poisonId || event.streamId === healthy[0]!.streamId
          ? note(journal, at(event))
          : Effect.void
      })
      // The poison order first: every healthy event sits behind it in the partition.
      yield* bus.publish(poison)
      yield* bus.publish(healthy)

      const handled = yield* waitFor(Ref.get(journal), (all) => all.includes(at(poison[2]!)))
      expect(handled.filter((entry) => entry === "poison attempted")).toHaveLength(patientPolicy.attempts)
      expect(handled.filter((entry) => entry.startsWith(poisonId))).toEqual([at(poison[1]!), at(poison[2]!)])
      // The healthy order was done before the poison one was given up on.
      expect(handled.indexOf(at(healthy[2]!))).toBeLessThan(handled.lastIndexOf("poison attempted"))
      const parked = yield* waitFor(Ref.get(letters), (all) => all.length >= 1)
      expect(parked.map((letter) => letter.key)).toEqual([poisonId])
      expect(parked[0]!.reason).toContain("poison")
    }))

  it.effect("commits a partition only up to its oldest unfinished message", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus
      const group = newGroup()
      const [done, stuck, after] = [
        lifecycle(uniqueOrderId("done")),
        lifecycle(uniqueOrderId("stuck"), 1),
        lifecycle(uniqueOrderId("after"))
      ]
      const ours = new Set([done, stuck, after].map((events) => events[0]!.streamId as string))
      const journal = yield* Ref.make<ReadonlyArray<string>>([])
      const subscribe = (stuckHandler: Effect.Effect<void>) =>
        bus.subscribe(group, (event) => {
          if (!ours.has(event.streamId)) return Effect.void
          return note(journal, at(event)).pipe(
            Effect.zipRight(event.streamId === stuck[0]!.streamId ? stuckHandler : Effect.void)
          )
        })

      const first = yield* Scope.make()
      yield* subscribe(Effect.never).pipe(Scope.extend(first))
      yield* bus.publish(done)
      yield* waitFor(Ref.get(journal), (all) => all.includes(at(done[2]!)))
      yield* bus.publish([...stuck, ...after])
      // The order after the stuck one is handled meanwhile; the stuck one never finishes.
      yield* waitFor(Ref.get(journal), (all) => all.includes(at(after[2]!)) && all.includes(at(stuck[0]!)))
      yield* Scope.close(first, Exit.void)

      yield* Ref.set(journal, [])
      const second = yield* Scope.make()
      yield* subscribe(Effect.void).pipe(Scope.extend(second))
      const redelivered = yield* waitFor(Ref.get(journal), (all) => all.includes(at(after[2]!)))
      yield* Scope.close(second, Exit.void)
      // The stuck event and everything after it again: nothing past it was committed. Nothing before it.
      expect([...redelivered].sort()).toEqual([...stuck, ...after].map(at).sort())
    }))

  it.effect("interrupts the handlers of a rebalanced member, and their events are delivered again", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus
      const group = newGroup()
      const [order] = lifecycle(uniqueOrderId("rebalanced"), 1)
      const journal = yield* Ref.make<ReadonlyArray<string>>([])
      const firstAttempt = yield* Deferred.make<void>()
      const handler = (member: string) => (event: { readonly streamId: string }) =>
        event.streamId !== order!.streamId ? Effect.void : Effect.gen(function*() {
          yield* note(journal, `${member} started`)
          // The first attempt hangs until the rebalance; any later one succeeds.
          if (yield* Deferred.succeed(firstAttempt, undefined)) {
            yield* Effect.never.pipe(Effect.onInterrupt(() => note(journal, `${member} interrupted`)))
          }
          yield* note(journal, `${member} finished`)
        })
      yield* bus.subscribe(group, handler("first"))
      yield* bus.publish([order!])
      yield* Deferred.await(firstAttempt)
      // A second member joins: the group rebalances, and the first member gives its partition up meanwhile.
      yield* bus.subscribe(group, handler("second"))
      const happened = yield* waitFor(Ref.get(journal), (all) => all.some((entry) => entry.endsWith("finished")))
      expect(happened.slice(0, 2)).toEqual(["first started", "first interrupted"])
      expect(happened.filter((entry) => entry.endsWith("finished"))).toHaveLength(1)
    }).pipe(Effect.scoped))
})

/** A loopback port that accepts connections and never answers, as a frozen broker would. */
const silentServer = Effect.acquireRelease(
  Effect.async<{ readonly server: Server; readonly sockets: Set<Socket> }>((resume) => {
    const sockets = new Set<Socket>()
    const server = createServer((socket) => sockets.add(socket.on("error", () => undefined)))
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ server, sockets })))
  }),
  ({ server, sockets }) =>
    Effect.async<void>((resume) => {
      sockets.forEach((socket) => socket.destroy())
      server.close(() => resume(Effect.void))
    })
).pipe(Effect.map(({ server }) => (server.address() as AddressInfo).port))

describe("EventBusKafka when Kafka fails", () => {
  it.scoped("fails a publish with ServiceUnavailable when no broker answers", () =>
    Effect.gen(function*() {
      const publish = yield* EventBusKafka.makePublish({ brokers: ["127.0.0.1:1"], clientId: "orders-test" })
      const error = yield* publish(lifecycle(uniqueOrderId("nowhere"))).pipe(Effect.flip)
      expect(error).toBeInstanceOf(ServiceUnavailable)
      expect(error.message).toMatch(/127\.0\.0\.1:1/)
    }), 20_000)

  it.scoped(
    "fails a publish to a broker that never answers within its time limit, and lets a caller stop sooner",
    () =>
      Effect.gen(function*() {
        const port = yield* silentServer
        const publish = yield* EventBusKafka.makePublish({
          brokers: [`127.0.0.1:${port}`],
          clientId: "orders-test",
          publishTimeout: "1 second"
        })
        const events = lifecycle(uniqueOrderId("frozen"))
        expect(yield* publish(events).pipe(Effect.timeout(Duration.millis(100)), Effect.option)).toEqual(Option.none())
        const error = yield* publish(events).pipe(Effect.flip)
        expect(error).toBeInstanceOf(ServiceUnavailable)
        expect(error.message).toMatch(/no acknowledgement within 1s/)
      }),
    20_000
  )

  it.scoped(
    "fails a subscription's `stopped` with ConsumerStopped when its topic disappears",
    () =>
      Effect.gen(function*() {
        const topic = `orders.events.test-${run}-doomed`
        yield* Effect.addFinalizer(() => deleteTopics([topic, `${topic}.dlq`]))
        const bus = yield* EventBusKafka.make(options(topic))
        const subscription = yield* bus.subscribe(newGroup(), () => Effect.void)
        yield* deleteTopics([topic])
        const error = yield* subscription.stopped.pipe(Effect.flip)
        expect(error).toBeInstanceOf(ConsumerStopped)
      }),
    60_000
  )

  // Not it.scoped: @effect/vitest 0.30's layer() overwrites the shared `it.effect`
  // and `it.scoped` with its own (here without TestClock), so the TestContext is explicit.
  it.scopedLive(
    "fails with a StartupError naming Kafka and its address when no broker answers",
    () =>
      Effect.gen(function*() {
        const fiber = yield* Layer.build(EventBusKafka.layer({ brokers: ["127.0.0.1:1"], clientId: "orders-test" }))
          .pipe(
            Effect.flip,
            Effect.fork
          )
        // The start-up retries wait about 15 s on the Clock between real
        // connection attempts: the TestClock skips the waits.
        while (Option.isNone(yield* Fiber.poll(fiber))) {
          yield* TestClock.adjust(Duration.seconds(1))
          yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 10)))
        }
        const error = yield* Fiber.join(fiber)
        expect(error).toBeInstanceOf(StartupError)
        expect(error.message).toMatch(/^cannot reach Kafka at 127\.0\.0\.1:1: /)
      }).pipe(Effect.provide(TestContext.TestContext)),
    30_000
  )
})
