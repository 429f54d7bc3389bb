/**
 * What an operator asks Kafka: how far each partition of a topic reaches, and
 * where each consumer group stands on it. Offsets are numbers: a partition
 * would need 2^53 records to lose precision.
 */
import { Admin, ListOffsetTimestamps } from "@platformatic/kafka"
import type { ConfigError } from "effect"
import { Config, Duration, Effect, Layer } from "effect"
import { brokersConfig, clientIdConfig, describeKafkaError } from "./EventBusKafka.js"

export interface KafkaAdminOptions {
  readonly brokers: ReadonlyArray<string>
  readonly clientId: string
}

/** The records a partition holds: offsets `start` (the oldest kept) to `end - 1`. */
export interface PartitionRange {
  readonly partition: number
  readonly start: number
  readonly end: number
}

const closeTimeout = Duration.seconds(5)

/** An operator command cannot do without the broker: its failures end the command. */
const ask = <A>(operation: string, run: () => Promise<A>) =>
  Effect.tryPromise({ try: run, catch: (cause) => new Error(`Kafka ${operation}: ${describeKafkaError(cause)}`) }).pipe(
    Effect.orDie
  )

export class KafkaAdmin extends Effect.Service<KafkaAdmin>()("orders/KafkaAdmin", {
  scoped: (options: KafkaAdminOptions) =>
    Effect.gen(function*() {
      const admin = yield* Effect.acquireRelease(
        Effect.sync(() =>
          new Admin({
            clientId: options.clientId,
            bootstrapBrokers: [...options.brokers],
            connectTimeout: 3_000,
            requestTimeout: 10_000,
            retries: 3
          })
        ),
        (admin) =>
          Effect.promise(() => admin.close()).pipe(
            Effect.timeout(closeTimeout),
            Effect.catchAll(() => Effect.logWarning(`the Kafka admin client did not close within 5 seconds`))
          )
      )

      const offsetsAt = (topic: string, partitions: ReadonlyArray<number>, timestamp: bigint) =>
        ask(`offsets of ${topic}`, () =>
          admin.listOffsets({
            topics: [{ name: topic, partitions: partitions.map((partitionIndex) => ({ partitionIndex, timestamp })) }]
          })).pipe(
            Effect.map((topics) =>
              new Map(
                topics.flatMap((listed) => listed.partitions).map((
                  found
                ) => [found.partitionIndex, Number(found.offset)])
              )
            )
          )

      /** Each partition's range; none when the topic does not exist. */
      const ranges = Effect.fn("KafkaAdmin.ranges")(function*(topic: string) {
        const topics = yield* ask("list topics", () => admin.listTopics())
        if (!topics.includes(topic)) return []
        const metadata = yield* ask(`metadata of ${topic}`, () => admin.metadata({ topics: [topic] }))
        const count = metadata.topics.get(topic)?.partitionsCount ?? 0
        const partitions = Array.from({ length: count }, (_, partition) => partition)
        const [starts, ends] = yield* Effect.all([
          offsetsAt(topic, partitions, ListOffsetTimestamps.EARLIEST),
          offsetsAt(topic, partitions, ListOffsetTimestamps.LATEST)
        ])
        return partitions.map((partition): PartitionRange => ({
          partition,
          start: starts.get(partition) ?? 0,
          end: ends.get(partition) ?? 0
        }))
      })

      /** The offset `group` will read next in each partition of `topic` it committed one for. */
      const committed = Effect.fn("KafkaAdmin.committed")(
        function*(group: string, topic: string, partitions: ReadonlyArray<number>) {
          const groups = yield* ask(`offsets of group ${group}`, () =>
            admin.listConsumerGroupOffsets({
              groups: [{ groupId: group, topics: [{ name: topic, partitionIndexes: [...partitions] }] }]
            }))
          return new Map(
            groups.flatMap((found) => found.topics).filter((found) => found.name === topic)
              .flatMap((found) => found.partitions)
              // -1: nothing committed.
              .filter((found) => found.committedOffset >= 0n)
              .map((found) => [found.partitionIndex, Number(found.committedOffset)])
          ) as ReadonlyMap<number, number>
        }
      )

      return { ranges, committed }
    })
}) {
  /** `KAFKA_BROKERS` (comma-separated, default `127.0.0.1:9092`) and `KAFKA_CLIENT_ID` (default `orders`). */
  static readonly layerConfig: Layer.Layer<KafkaAdmin, ConfigError.ConfigError> = Layer.unwrapEffect(
    Config.all({ brokers: brokersConfig, clientId: clientIdConfig }).pipe(Effect.map(KafkaAdmin.Default))
  )
}
