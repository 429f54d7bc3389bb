/**
 * Kafka as the tests see it from outside the adapter: raw topics, records
 * written and read with the client alone.
 */
import { waitFor } from "@orders/domain/testing/fixtures"
import type { MessagesStream } from "@platformatic/kafka"
import {
  Admin,
  Consumer,
  MessagesStreamModes,
  ProduceAcks,
  Producer,
  stringDeserializers,
  stringSerializers
} from "@platformatic/kafka"
import { Effect, Ref } from "effect"
import { kafkaBrokers } from "./stack.js"

const client = { clientId: "orders-test-raw", bootstrapBrokers: kafkaBrokers }

/** Runs `use` with an admin client, closed afterwards. */
export const withAdmin = <A>(use: (admin: Admin) => Promise<A>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => new Admin(client)),
    (admin) => Effect.promise(() => use(admin)),
    (admin) => Effect.promise(() => admin.close())
  )

/** Deletes the topics that exist among `topics`. */
export const deleteTopics = (topics: ReadonlyArray<string>) =>
  withAdmin(async (admin) => {
    const existing = new Set(await admin.listTopics())
    const doomed = topics.filter((topic) => existing.has(topic))
    if (doomed.length > 0) await admin.deleteTopics({ topics: doomed })
  })

export interface RawRecord {
  readonly key: string
  readonly value: string
  readonly headers?: Record<string, string>
}

/** Writes records as another program would, bypassing the adapter. */
export const produceRaw = (topic: string, records: ReadonlyArray<RawRecord>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => new Producer({ ...client, serializers: stringSerializers })),
    (producer) =>
      Effect.promise(() =>
        producer.send({ acks: ProduceAcks.ALL, messages: records.map((record) => ({ topic, ...record })) })
      ),
    (producer) => Effect.promise(() => producer.close())
  )

export interface ReadRecord {
  readonly partition: number
  readonly offset: bigint
  readonly key: string | undefined
  readonly value: string | undefined
  readonly headers: Record<string, string>
}

/** Reads `topic` from the beginning, with the client alone, until `done` holds for what was read. */
export const readTopic = (topic: string, done: (records: ReadonlyArray<ReadRecord>) => boolean) =>
  Effect.gen(function*() {
    const read = yield* Ref.make<ReadonlyArray<ReadRecord>>([])
    const consumer = yield* Effect.acquireRelease(
      Effect.sync(() =>
        new Consumer({
          ...client,
          groupId: `reader-${crypto.randomUUID()}`,
          deserializers: stringDeserializers,
          maxWaitTime: 200
        })
      ),
      (consumer) => Effect.promise(() => consumer.close(true))
    )
    const stream: MessagesStream<string, string, string, string> = yield* Effect.promise(() =>
      consumer.consume({ topics: [topic], mode: MessagesStreamModes.EARLIEST, autocommit: false })
    )
    stream.on("data", (message) => {
      const record = {
        partition: message.partition,
        offset: message.offset,
        key: message.key,
        value: message.value,
        headers: Object.fromEntries(message.headers)
      }
      Effect.runSync(Ref.update(read, (all) => [...all, record]))
    })
    return yield* waitFor(Ref.get(read), done)
  }).pipe(Effect.scoped)
