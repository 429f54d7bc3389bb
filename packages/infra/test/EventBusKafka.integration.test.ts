import { afterAll, describe, expect, it, layer } from "@effect/vitest"
import { EventBus } from "@orders/domain/EventBus"
import { ServiceUnavailable } from "@orders/domain/OrderError"
import type { OrderEventEnvelope } from "@orders/domain/OrderEvent"
import { OrderProcessingRequested } from "@orders/domain/OrderEvent"
import { Duration, Effect, Exit, Fiber, Layer, Option, Ref, Scope, TestClock, TestContext } from "effect"
import type { IHeaders, Message } from "kafkajs"
import { Kafka, logLevel } from "kafkajs"
import { eventBusContract } from "../../domain/test/contract/EventBusContract.js"
import { envelope, lifecycle, uniqueOrderId, waitFor } from "../../domain/test/fixtures.js"
import * as EventBusKafka from "../src/EventBusKafka.js"
import { StartupError } from "../src/Startup.js"

const brokers = (process.env.KAFKA_BROKERS ?? "127.0.0.1:9092").split(",")
const run = crypto.randomUUID().slice(0, 8)
// Fresh topics per run: a new group reads its topic from the beginning, and
// must not wade through earlier runs' events (or this file's malformed ones).
const contractTopic = `orders.events.test-${run}`
const adapterTopic = `orders.events.test-${run}-adapter`
const options = (topic: string): EventBusKafka.EventBusKafkaOptions => ({
  brokers,
  clientId: "orders-test",
  topic,
  partitions: 3
})

const raw = new Kafka({ brokers, clientId: "orders-test-raw", logLevel: logLevel.NOTHING })

afterAll(async () => {
  const admin = raw.admin()
  await admin.connect()
  await admin.deleteTopics({
    topics: [contractTopic, `${contractTopic}.dlq`, adapterTopic, `${adapterTopic}.dlq`]
  }).catch(() => undefined)
  await admin.disconnect()
})

eventBusContract("Kafka", EventBusKafka.layer(options(contractTopic)))

const append = <A>(ref: Ref.Ref<ReadonlyArray<A>>, item: A) => Ref.update(ref, (all) => [...all, item])

const produceRaw = (topic: string, messages: Array<Message>) =>
  Effect.acquireUseRelease(
    Effect.promise(async () => {
      const producer = raw.producer()
      await producer.connect()
      return producer
    }),
    (producer) => Effect.promise(() => producer.send({ topic, acks: -1, messages })),
    (producer) => Effect.promise(() => producer.disconnect())
  )

interface RawMessage {
  readonly partition: number
  readonly key: string | undefined
  readonly value: string | undefined
  readonly headers: Record<string, string>
}

const text = (headers: IHeaders | undefined) =>
  Object.fromEntries(Object.entries(headers ?? {}).map(([name, value]) => [name, String(value)]))

/** Reads a topic from the beginning, with kafkajs alone, until `done` holds for what was read. */
const readTopic = (topic: string, done: (messages: ReadonlyArray<RawMessage>) => boolean) =>
  Effect.gen(function*() {
    const read = yield* Ref.make<ReadonlyArray<RawMessage>>([])
    const consumer = raw.consumer({ groupId: `reader-${crypto.randomUUID()}`, maxWaitTimeInMs: 200 })
    yield* Effect.acquireRelease(
      Effect.promise(() => consumer.connect()),
      () => Effect.promise(() => consumer.disconnect())
    )
    yield* Effect.promise(async () => {
      await consumer.subscribe({ topics: [topic], fromBeginning: true })
      await consumer.run({
        eachMessage: async ({ message, partition }) => {
          Effect.runSync(append(read, {
            partition,
            key: message.key?.toString(),
            value: message.value?.toString(),
            headers: text(message.headers)
          }))
        }
      })
    })
    return yield* waitFor(Ref.get(read), done)
  }).pipe(Effect.scoped)

layer(EventBusKafka.layer(options(adapterTopic)), { excludeTestServices: true, timeout: Duration.minutes(1) })(
  "EventBusKafka",
  (it) => {
    it.scoped("delivers each order's events in version order while the topic's partitions run concurrently", () =>
      Effect.gen(function*() {
        const bus = yield* EventBus
        const orders = Array.from({ length: 12 }, () => lifecycle(uniqueOrderId("ordered")))
        const ours = new Set(orders.map((events) => events[0]!.streamId as string))
        const published = [0, 1, 2].flatMap((i) => orders.map((events) => events[i]!))
        const received = yield* Ref.make<ReadonlyArray<OrderEventEnvelope>>([])
        yield* bus.subscribe(`g-${crypto.randomUUID()}`, (event) =>
          ours.has(event.streamId)
            // Uneven handling times, so that partitions overtake one another.
            ? Effect.sleep(Duration.millis(Math.random() * 20)).pipe(Effect.zipRight(append(received, event)))
            : Effect.void)
        yield* Effect.forEach(published, (event) => bus.publish([event]), { discard: true })

        const events = yield* waitFor(Ref.get(received), (all) => all.length >= published.length)
        expect(events.length).toBe(published.length)
        for (const order of ours) {
          expect(events.filter((event) => event.streamId === order).map((event) => event.version)).toEqual([1, 2, 3])
        }
        const onTopic = (yield* readTopic(
          adapterTopic,
          (all) => all.filter((message) => ours.has(message.key ?? "")).length >= published.length
        )).filter((message) => ours.has(message.key ?? ""))
        expect(new Set(onTopic.map((message) => message.partition)).size).toBeGreaterThan(1)
      }))

    it.effect("closes a subscriber whose handler retries forever promptly, and the group's next member gets the event", () =>
      Effect.gen(function*() {
        const bus = yield* EventBus
        const group = `g-${crypto.randomUUID()}`
        const events = lifecycle(uniqueOrderId("stuck"))
        const orderId = events[0]!.streamId
        const attempts = yield* Ref.make(0)
        const first = yield* Scope.make()
        yield* bus.subscribe(group, (event) =>
          event.streamId !== orderId
            ? Effect.void
            : Ref.update(attempts, (n) => n + 1).pipe(Effect.zipRight(Effect.fail("still broken")))).pipe(
            Scope.extend(first)
          )
        yield* bus.publish(events)
        expect(yield* waitFor(Ref.get(attempts), (n) => n >= 3)).toBeGreaterThanOrEqual(3)

        const [closing] = yield* Effect.timed(Scope.close(first, Exit.void))
        expect(Duration.toMillis(closing)).toBeLessThan(5_000)
        const attemptsWhenClosed = yield* Ref.get(attempts)
        yield* Effect.sleep(Duration.millis(300))
        expect(yield* Ref.get(attempts)).toBe(attemptsWhenClosed)

        const versions = yield* Ref.make<ReadonlyArray<number>>([])
        yield* bus.subscribe(
          group,
          (event) => event.streamId === orderId ? append(versions, event.version) : Effect.void
        )
        expect(yield* waitFor(Ref.get(versions), (all) => all.includes(3))).toEqual([1, 2, 3])
      }).pipe(Effect.scoped))

    it.scoped("fails a publish the broker refuses with ServiceUnavailable, and publishes again afterwards", () =>
      Effect.gen(function*() {
        const bus = yield* EventBus
        const orderId = uniqueOrderId("refused")
        const versions = yield* Ref.make<ReadonlyArray<number>>([])
        yield* bus.subscribe(
          `g-${crypto.randomUUID()}`,
          (event) => event.streamId === orderId ? append(versions, event.version) : Effect.void
        )
        // One batch (one key, one partition) over the broker's 1 MB message.max.bytes.
        const tooLarge = Array.from(
          { length: 6_000 },
          (_, i) => envelope(i + 1, OrderProcessingRequested.make({ orderId }))
        )
        const error = yield* bus.publish(tooLarge).pipe(Effect.flip)
        expect(error).toBeInstanceOf(ServiceUnavailable)
        expect(error.service).toBe("Kafka")

        yield* bus.publish(lifecycle(orderId))
        expect(yield* waitFor(Ref.get(versions), (all) => all.length >= 3)).toEqual([1, 2, 3])
      }))

    it.scoped("sends an undecodable message to the dead-letter topic and goes on to the next event", () =>
      Effect.gen(function*() {
        const bus = yield* EventBus
        const orderId = uniqueOrderId("dlq")
        const received = yield* Ref.make<ReadonlyArray<OrderEventEnvelope>>([])
        yield* bus.subscribe(
          `g-${crypto.randomUUID()}`,
          (event) => event.streamId === orderId ? append(received, event) : Effect.void
        )
        // Same key as the order: ahead of its event in the same partition.
        const malformed = ["not json", JSON.stringify({ eventId: "not-a-uuid", type: "OrderCreated" })]
        yield* produceRaw(adapterTopic, malformed.map((value) => ({ key: orderId, value })))
        yield* bus.publish(lifecycle(orderId, 1))

        const events = yield* waitFor(Ref.get(received), (all) => all.length >= 1)
        expect(events.map((event) => event.version)).toEqual([1])
        const dead = (yield* readTopic(
          `${adapterTopic}.dlq`,
          (all) => all.filter((message) => message.key === orderId).length >= 2
        )).filter((message) => message.key === orderId)
        expect(dead.map((message) => message.value)).toEqual(malformed)
        for (const message of dead) {
          expect(message.headers.error).toMatch(/\S/)
          expect(message.headers.sourceTopic).toBe(adapterTopic)
          expect(message.headers.sourceOffset).toMatch(/^\d+$/)
        }
      }))
  }
)

describe("EventBusKafka start-up", () => {
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
