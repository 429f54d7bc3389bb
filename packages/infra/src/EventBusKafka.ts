/**
 * The EventBus port on Kafka (@platformatic/kafka): one topic keyed by order
 * id, so that the events of one order share a partition and keep their order;
 * one consumer group per subscriber kind; what a group gives up on (an event
 * its handler kept failing on, a message that is not an event) goes to the
 * dead-letter topic `<topic>.dlq`.
 */
import { Tracer as OtelTracer } from "@effect/opentelemetry"
import type { DeadLetter, DeliveryPolicy, EventBusShape, EventHandler, Subscription } from "@orders/domain/EventBus"
import {
  ConsumerStopped,
  currentTraceparent,
  defaultDeliveryPolicy,
  deliver,
  EventBus,
  parkedMessages,
  parseTraceparent,
  withDeliverySpan
} from "@orders/domain/EventBus"
import { ServiceUnavailable } from "@orders/domain/OrderError"
import type { OrderEventEnvelope } from "@orders/domain/OrderEvent"
import { decodeEventJson, encodeEvent } from "@orders/domain/OrderEvent"
import { annotateSpan, traced } from "@orders/domain/Tracing"
import type {
  Base,
  GroupPartitionsAssigner,
  GroupPartitionsAssignments,
  Message,
  MessagesStream,
  MessageToProduce
} from "@platformatic/kafka"
import {
  Admin,
  compatibilityPartitioner,
  Consumer,
  findErrorBy,
  MessagesStreamFallbackModes,
  MessagesStreamModes,
  ProduceAcks,
  Producer,
  stringDeserializer,
  stringSerializer
} from "@platformatic/kafka"
import type { Scope } from "effect"
import {
  Cause,
  Chunk,
  Config,
  Deferred,
  Duration,
  Effect,
  Exit,
  FiberSet,
  Layer,
  Metric,
  Option,
  Queue,
  Runtime,
  Schedule,
  ScopedRef
} from "effect"
import { connectWithRetry } from "./Startup.js"
import type { StartupError } from "./Startup.js"

/**
 * Round robin over the members SUBSCRIBED to each topic. The client's own
 * assigner deals every topic's partitions to every member of the group, so a
 * group name shared by consumers of different topics (two deployments on one
 * cluster, each with its own topic) left partitions with members that never
 * read them: those orders stalled.
 */
export const subscribedRoundRobin: GroupPartitionsAssigner = (_current, members, _leaderTopics, metadata) => {
  const assignments = new Map<string, GroupPartitionsAssignments>(
    [...members.keys()].map((memberId) => [memberId, { memberId, assignments: new Map() }])
  )
  // Every member's topics, not only the leader's (which is all the client passes as `topics`).
  const topics = new Set([...members.values()].flatMap((member) => member.topics ?? []))
  for (const topic of topics) {
    const readers = [...members.values()]
      .filter((member) => member.topics?.includes(topic) ?? false)
      .map((member) => member.memberId)
      .sort()
    const partitions = metadata.topics.get(topic)?.partitionsCount ?? 0
    for (let partition = 0; partition < partitions && readers.length > 0; partition++) {
      const member = assignments.get(readers[partition % readers.length]!)!
      const assigned = member.assignments.get(topic) ?? { topic, partitions: [] }
      assigned.partitions.push(partition)
      member.assignments.set(topic, assigned)
    }
  }
  return [...assignments.values()]
}

export interface EventBusKafkaOptions {
  readonly brokers: ReadonlyArray<string>
  readonly clientId: string
  /** Default `orders.events`. */
  readonly topic?: string
  /** Partitions of the topics created at start-up. Default 12. */
  readonly partitions?: number
  /** Default 1 (a single broker). */
  readonly replicationFactor?: number
  /** Default `<topic>.dlq`. */
  readonly deadLetterTopic?: string
  /** How a consumer retries a failing handler before it parks the event. Default `defaultDeliveryPolicy`. */
  readonly deliveryPolicy?: DeliveryPolicy
  /** How many messages one subscription handles at once (of different orders). Default 64. */
  readonly concurrency?: number
  /** A produce request not acknowledged within this fails its publishes with ServiceUnavailable. Default 10 s. */
  readonly publishTimeout?: Duration.DurationInput
  /** Without a heartbeat for this long a member is dropped from its group. Default 10 s (the broker's minimum is 6 s). */
  readonly sessionTimeout?: Duration.DurationInput
  /** Default 1 s. */
  readonly heartbeatInterval?: Duration.DurationInput
  /** How long a rebalance waits for the members to join again. Default 15 s. */
  readonly rebalanceTimeout?: Duration.DurationInput
  /** Longest fetch long-poll. Default 1 s. */
  readonly maxWaitTime?: Duration.DurationInput
  /** How long `subscribe` waits for the consumer to join its group. Default 30 s. */
  readonly joinTimeout?: Duration.DurationInput
  /**
   * How long a consumer gathers finished messages before it commits their
   * offsets, in one request. Default 100 ms: a consumer that dies redelivers
   * at most that much more work, which the handlers absorb as they absorb any
   * redelivery.
   */
  readonly commitInterval?: Duration.DurationInput
  /** How often a consumer measures its lag (`orders_consumer_lag`). Default 10 s. */
  readonly lagInterval?: Duration.DurationInput
}

/** Keys are order ids and headers text; values stay bytes, so that a dead letter carries the payload as received. */
type Received = Message<string, Buffer, string, string>
type Outgoing = MessageToProduce<string, Buffer, string, string>

/** The client nests the errors of its retries in `MultipleErrors`, whose own message only counts them. */
export const describeKafkaError = (error: unknown): string =>
  error instanceof AggregateError && error.errors.length > 0
    ? [...new Set(error.errors.map(describeKafkaError))].join("; ")
    : error instanceof Error
    ? error.message
    : String(error)

/** A record may have no value (or no key) whatever the types say. */
const text = (bytes: Buffer | undefined) => bytes?.toString("utf8") ?? ""

/** An error of the client, with the messages of the errors it nests. */
const failure = (error: unknown) => new Error(describeKafkaError(error), { cause: error })

const unavailable = (what: string) => (cause: unknown) =>
  new ServiceUnavailable({ service: "Kafka", message: `${what}: ${describeKafkaError(cause)}` })

/**
 * The client logs only through the `debug` package (DEBUG=plt:kafka:*): its
 * events are logged instead, from their listeners, with the Scope's logger.
 */
const eventLogger = (annotations: Record<string, unknown>) =>
  Effect.map(
    Effect.runtime<never>(),
    (runtime) => (line: Effect.Effect<void>) => Runtime.runSync(runtime)(line.pipe(Effect.annotateLogs(annotations)))
  )

type EventLogger = Effect.Effect.Success<ReturnType<typeof eventLogger>>

/** Connection trouble is retried by the client and reported by the operation that gives up: debug lines. */
const logBrokerEvents = (client: Base, log: EventLogger) => {
  client.on(
    "client:broker:failed",
    ({ broker }) => log(Effect.logDebug(`cannot connect to ${broker.host}:${broker.port}`))
  )
  client.on(
    "client:broker:disconnect",
    ({ broker }) => log(Effect.logDebug(`disconnected from ${broker.host}:${broker.port}`))
  )
}

const closeTimeout = Duration.seconds(5)

/** Every client close is bounded: a shutdown must not hang on the broker. */
const closing = (what: string, close: () => Promise<unknown>) =>
  Effect.tryPromise(close).pipe(
    Effect.timeoutFail({
      duration: closeTimeout,
      onTimeout: () => new Error(`no answer within ${Duration.format(closeTimeout)}`)
    }),
    Effect.catchAll((error) => Effect.logWarning(`Kafka ${what} did not close cleanly: ${describeKafkaError(error)}`))
  )

/** The client's own retries: 250 ms doubling to at most 5 s. */
const retryDelay = (_client: unknown, _operation: string, attempt: number) => Math.min(250 * 2 ** (attempt - 1), 5_000)
/** About 2 s of retries: a publish fails fast when the broker is gone (the relay publishes it later). */
const producerRetries = 3
/** About 20 s of retries: a consumer rides out a broker restart before it stops for good. */
const consumerRetries = 8

/** Doubling from the policy's backoff to its maximum (the policy's attempts are counted where they apply). */
const backoff = (policy: DeliveryPolicy) =>
  Schedule.exponential(policy.backoff).pipe(Schedule.union(Schedule.spaced(policy.maxBackoff)))

/** How many pending publishes share one produce request at most. */
const maxPublishesPerRequest = 256

const settingsOf = (options: EventBusKafkaOptions) => {
  const millis = (duration: Duration.DurationInput | undefined, fallback: Duration.DurationInput) =>
    Duration.toMillis(duration ?? fallback)
  const topic = options.topic ?? "orders.events"
  const rebalanceTimeout = millis(options.rebalanceTimeout, "15 seconds")
  return {
    client: { clientId: options.clientId, bootstrapBrokers: [...options.brokers], connectTimeout: 3_000, retryDelay },
    address: options.brokers.join(","),
    topic,
    deadLetterTopic: options.deadLetterTopic ?? `${topic}.dlq`,
    partitions: options.partitions ?? 12,
    replicationFactor: options.replicationFactor ?? 1,
    policy: options.deliveryPolicy ?? defaultDeliveryPolicy,
    concurrency: options.concurrency ?? 64,
    publishTimeout: Duration.decode(options.publishTimeout ?? "10 seconds"),
    joinTimeout: Duration.decode(options.joinTimeout ?? "30 seconds"),
    commitInterval: Duration.decode(options.commitInterval ?? "100 millis"),
    lagInterval: Duration.decode(options.lagInterval ?? "10 seconds"),
    group: {
      sessionTimeout: millis(options.sessionTimeout, "10 seconds"),
      heartbeatInterval: millis(options.heartbeatInterval, "1 second"),
      rebalanceTimeout,
      maxWaitTime: millis(options.maxWaitTime, "1 second"),
      // A JoinGroup request legitimately waits up to the rebalance timeout for the other members.
      requestTimeout: rebalanceTimeout + 5_000
    }
  }
}

type Settings = ReturnType<typeof settingsOf>

/** Creates the topics that are missing and waits until every partition has a leader. */
const ensureTopics = (settings: Settings) =>
  Effect.acquireRelease(
    Effect.sync(() => new Admin({ ...settings.client, retries: 0, requestTimeout: 10_000 })),
    (admin) => closing("admin client", () => admin.close())
  ).pipe(
    Effect.flatMap((admin) =>
      // The start-up retries (connectWithRetry) are the only ones: the admin's are off.
      connectWithRetry("Kafka", settings.address, async () => {
        const topics = [settings.topic, settings.deadLetterTopic]
        try {
          const existing = new Set(await admin.listTopics())
          const missing = topics.filter((topic) => !existing.has(topic))
          if (missing.length > 0) {
            await admin.createTopics({
              topics: missing,
              partitions: settings.partitions,
              replicas: settings.replicationFactor
            }).catch((error: Error) => {
              // Another process created them meanwhile.
              if (findErrorBy(error, "apiId", "TOPIC_ALREADY_EXISTS") === null) throw error
            })
          }
          const metadata = await admin.metadata({ topics, forceUpdate: true })
          const leaderless = topics.filter((topic) =>
            metadata.topics.get(topic)?.partitions.every((partition) => partition.leader >= 0) !== true
          )
          if (leaderless.length > 0) throw new Error(`no leader yet for every partition of ${leaderless.join(", ")}`)
        } catch (error) {
          throw failure(error)
        }
      })
    ),
    Effect.scoped
  )

/**
 * The producer: acks from every in-sync replica, one request in flight per
 * connection, and no idempotence. The client's idempotent producer takes the
 * producer id of a send before it numbers the send's records, and it renumbers
 * from 0 after a failed send: a concurrent send could then reuse the sequence
 * numbers of a batch whose acknowledgement was lost, and the broker would
 * acknowledge it as a duplicate without writing it. A retried send may instead
 * write a record twice, which the consumers, idempotent by design, absorb.
 */
const acquireProducer = (settings: Settings) =>
  Effect.acquireRelease(
    Effect.map(eventLogger({ kafkaClient: "producer" }), (log) => {
      const producer = new Producer<string, Buffer, string, string>({
        ...settings.client,
        idempotent: false,
        maxInflights: 1,
        retries: producerRetries,
        requestTimeout: 10_000,
        // Java's and kafkajs's partitioner: an order keeps the partition it had before this client.
        partitioner: compatibilityPartitioner,
        autocreateTopics: false,
        serializers: { key: stringSerializer, headerKey: stringSerializer, headerValue: stringSerializer }
      })
      logBrokerEvents(producer, log)
      return producer
    }),
    (producer) => closing("producer", () => producer.close(true))
  ).pipe(
    Effect.map((producer) => (to: string, records: ReadonlyArray<Outgoing>) =>
      Effect.async<void, ServiceUnavailable>((resume) => {
        const failed = unavailable(`cannot write to ${to}`)
        // A timer of its own: Effect.timeout forks a fiber per call, which slowed single publishes measurably.
        const timer = setTimeout(
          () => resume(Effect.fail(failed(`no acknowledgement within ${Duration.format(settings.publishTimeout)}`))),
          Duration.toMillis(settings.publishTimeout)
        )
        // The client applies no `acks` of its constructor to a send: each send says all.
        producer.send({ messages: [...records], acks: ProduceAcks.ALL }, (error) => {
          clearTimeout(timer)
          resume(error ? Effect.fail(failed(error)) : Effect.void)
        })
        return Effect.sync(() => clearTimeout(timer))
      })
    )
  )

type Send = Effect.Effect.Success<ReturnType<typeof acquireProducer>>

/** W3C trace context, as message headers. */
interface TraceHeaders {
  readonly traceparent?: string
  readonly tracestate?: string
}

/** The trace context of the current span: its `traceparent`, and its OpenTelemetry `tracestate` if it has one. */
const currentTraceHeaders: Effect.Effect<TraceHeaders> = Effect.gen(function*() {
  const traceparent = yield* currentTraceparent
  if (traceparent === undefined) return {}
  const tracestate = yield* OtelTracer.currentOtelSpan.pipe(
    Effect.map((span) => span.spanContext().traceState?.serialize()),
    Effect.orElseSucceed(() => undefined)
  )
  return tracestate === undefined || tracestate === "" ? { traceparent } : { traceparent, tracestate }
})

/** The trace id field of a `traceparent`. */
const traceIdOf = (traceparent: string | undefined) => traceparent?.split("-")[1]

/**
 * A message carries the context of the span that published it, so that its
 * consumers' spans are children of that span; unless the event's command
 * belongs to another trace (a relay round publishing the events of several
 * commands), whose context it carries instead.
 */
const traceHeadersOf = (publishing: TraceHeaders, event: OrderEventEnvelope): TraceHeaders => {
  const own = event.metadata.traceparent
  return own === undefined || traceIdOf(publishing.traceparent) === traceIdOf(own) ? publishing : { traceparent: own }
}

/** The remote parent a message names in its headers, with its `tracestate`. */
const producerSpanOf = (message: Received) =>
  Option.map(parseTraceparent(message.headers.get("traceparent")), (parent) => {
    const traceState = message.headers.get("tracestate")
    return traceState === undefined ? parent : OtelTracer.makeExternalSpan({
      traceId: parent.traceId,
      spanId: parent.spanId,
      traceFlags: parent.sampled ? 1 : 0,
      traceState
    })
  })

interface PendingPublish {
  readonly records: ReadonlyArray<Outgoing>
  readonly written: Deferred.Deferred<void, ServiceUnavailable>
}

/**
 * Publishes go out one produce request at a time, in the order they were
 * made; those that arrive while a request is in flight share the next one. A
 * publish waits at most for the request in flight and its own, each bounded
 * by `publishTimeout`.
 */
const publisher = (settings: Settings, send: Send) =>
  Effect.gen(function*() {
    const pending = yield* Queue.unbounded<PendingPublish>()
    const settle = (batch: Iterable<PendingPublish>, exit: Exit.Exit<void, ServiceUnavailable>) =>
      Effect.forEach(batch, ({ written }) => Deferred.done(written, exit), { discard: true })
    const closed = Exit.fail(unavailable(`cannot publish to ${settings.topic}`)("the bus is closed"))
    // Runs after the sender below is interrupted: what it had not taken fails; a later publish is interrupted.
    yield* Effect.addFinalizer(() =>
      Queue.takeAll(pending).pipe(
        Effect.flatMap((rest) => settle(rest, closed)),
        Effect.zipRight(Queue.shutdown(pending))
      )
    )
    yield* Queue.takeBetween(pending, 1, maxPublishesPerRequest).pipe(
      Effect.flatMap((batch) =>
        send(settings.topic, Chunk.toReadonlyArray(batch).flatMap((publish) => publish.records)).pipe(
          Effect.exit,
          Effect.flatMap((exit) => settle(batch, exit)),
          Effect.onInterrupt(() => settle(batch, closed))
        )
      ),
      Effect.forever,
      Effect.forkScoped
    )

    return Effect.fnUntraced(
      function*(events: ReadonlyArray<OrderEventEnvelope>) {
        yield* annotateSpan({ topic: settings.topic, count: events.length })
        if (events.length === 0) return
        const written = yield* Deferred.make<void, ServiceUnavailable>()
        const publishing = yield* currentTraceHeaders
        yield* Queue.offer(pending, {
          records: events.map((event) => ({
            topic: settings.topic,
            key: event.streamId,
            value: Buffer.from(JSON.stringify(encodeEvent(event))),
            headers: {
              eventType: event.type,
              eventId: event.eventId,
              correlationId: event.metadata.correlationId,
              ...traceHeadersOf(publishing, event)
            }
          })),
          written
        })
        yield* Deferred.await(written)
      },
      traced("EventBusKafka.publish", { kind: "producer" })
    )
  })

/**
 * The publishing half of the bus, without the start-up check of the topics:
 * `make` uses it, and on its own it shows how a publish fails when no broker
 * answers.
 */
export const makePublish = (
  options: EventBusKafkaOptions
): Effect.Effect<EventBusShape["publish"], never, Scope.Scope> =>
  Effect.suspend(() => {
    const settings = settingsOf(options)
    return acquireProducer(settings).pipe(Effect.flatMap((send) => publisher(settings, send)))
  })

/** The offsets of one partition still being handled, in the order they were read, and the next one to read. */
interface Progress {
  readonly unfinished: Set<bigint>
  next: bigint
  committed: bigint
  leaderEpoch: number
}

/** Where the group resumes this partition: at its oldest unfinished message, or after the last one read. */
const resumeAt = (progress: Progress): bigint => progress.unfinished.values().next().value ?? progress.next

/**
 * Waits for the next message. The stream is read one message at a time, so
 * that the client stops fetching while the handlers are busy.
 */
const nextMessage = (stream: MessagesStream<string, Buffer, string, string>): Effect.Effect<Received> =>
  Effect.suspend(() => {
    const message: Received | null = stream.read()
    return message !== null ? Effect.succeed(message) : Effect.async<void>((resume) => {
      const wake = () => resume(Effect.void)
      stream.once("readable", wake)
      return Effect.sync(() => stream.removeListener("readable", wake))
    }).pipe(Effect.zipRight(nextMessage(stream)))
  })

/** How many messages of each partition the group has yet to commit, by group, topic and partition. */
export const consumerLag = Metric.gauge("orders_consumer_lag", {
  description: "Messages of a partition not yet committed by the consumer group (end offset minus committed offset)"
})

/**
 * Measures the lag of the partitions this member holds: each partition's end
 * offset against the group's committed one. A partition no longer held shows
 * 0 here: its new holder reports it.
 */
const reportLag = (
  consumer: Consumer<string, Buffer, string, string>,
  topic: string,
  group: string
) => {
  const reported = new Set<number>()
  const lagOf = (partition: number) =>
    consumerLag.pipe(
      Metric.tagged("group", group),
      Metric.tagged("topic", topic),
      Metric.tagged("partition", String(partition))
    )
  return Effect.gen(function*() {
    const held = consumer.isActive()
      ? consumer.assignments?.find((assignment) => assignment.topic === topic)?.partitions ?? []
      : []
    const [ends, committed] = held.length === 0 ?
      [new Map<string, Array<bigint>>(), new Map<string, Array<bigint>>()] :
      yield* Effect.tryPromise({
        try: () =>
          Promise.all([
            consumer.listOffsets({ topics: [topic] }),
            consumer.listCommittedOffsets({ topics: [{ topic, partitions: held }] })
          ]),
        catch: failure
      })
    for (const partition of held) {
      const end = ends.get(topic)?.[partition] ?? 0n
      // -1: nothing committed yet; counted from offset 0.
      const done = committed.get(topic)?.[partition] ?? -1n
      yield* Metric.set(lagOf(partition), Number(end - (done < 0n ? 0n : done)))
      reported.add(partition)
    }
    for (const partition of reported) {
      if (!held.includes(partition)) {
        yield* Metric.set(lagOf(partition), 0)
        reported.delete(partition)
      }
    }
  })
}

/**
 * Consumes `topic` as a member of `group` until the Scope closes, passing each
 * message to `handle`, which finishes it (handles, parks or dead-letters it)
 * and never fails.
 *
 * The messages of different keys are handled concurrently, those of one key
 * one after the other. A partition's offset is committed up to its oldest
 * unfinished message. Each generation of the group reads its own stream,
 * opened from the committed offsets once the member has joined: a rebalance
 * interrupts the handlers at work, whose messages, not committed, are read
 * again by whoever owns their partition now.
 */
const consume = <R>(
  settings: Settings,
  topic: string,
  group: string,
  handle: (message: Received) => Effect.Effect<void, never, R>
): Effect.Effect<Subscription, ServiceUnavailable, R | Scope.Scope> =>
  Effect.gen(function*() {
    const log = yield* eventLogger({ group, topic, kafkaClient: "consumer" })
    const joins = yield* Queue.sliding<number>(1)
    /** Fails when the consumer or its stream gave up. */
    const broken = yield* Deferred.make<never, unknown>()
    const stopped = yield* Deferred.make<never, ConsumerStopped>()

    const consumer = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const consumer = new Consumer<string, Buffer, string, string>({
          ...settings.client,
          ...settings.group,
          groupId: group,
          partitionAssigner: subscribedRoundRobin,
          retries: consumerRetries,
          autocommit: false,
          maxBytes: 1_048_576,
          deserializers: { key: stringDeserializer, headerKey: stringDeserializer, headerValue: stringDeserializer }
        })
        logBrokerEvents(consumer, log)
        consumer.on("consumer:group:join", ({ assignments, generationId }) => {
          log(
            Effect.logInfo("joined the consumer group").pipe(Effect.annotateLogs({
              generation: generationId,
              partitions: assignments?.flatMap((assignment) => assignment.partitions).join(",") ?? ""
            }))
          )
          if (generationId !== undefined) Queue.unsafeOffer(joins, generationId)
        })
        consumer.on("consumer:group:rebalance", () => log(Effect.logDebug("the consumer group is rebalancing")))
        consumer.on("consumer:heartbeat:error", ({ error }) =>
          log(Effect.logDebug(`heartbeat failed: ${describeKafkaError(error)}`)))
        consumer.on("consumer:heartbeat:stalled", ({ lastError, stalledFor }) =>
          log(Effect.logWarning(
            `no heartbeat for ${stalledFor} ms${lastError === undefined ? "" : `: ${describeKafkaError(lastError)}`}`
          )))
        consumer.on("error", (error) =>
          Deferred.unsafeDone(broken, Exit.fail(failure(error))))
        return consumer
      }),
      (consumer) => closing(`consumer of group ${group}`, () => consumer.close(true))
    )

    /** A stream for the current generation, opened once the member has joined it. */
    const openStream = Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const stream = await consumer.consume({
            topics: [topic],
            mode: MessagesStreamModes.COMMITTED,
            fallbackMode: MessagesStreamFallbackModes.EARLIEST
          })
          return { stream, generation: consumer.generationId }
        },
        catch: unavailable(`consumer group ${group} cannot join`)
      }).pipe(
        Effect.timeoutFail({
          duration: settings.joinTimeout,
          onTimeout: () =>
            unavailable(`consumer group ${group}`)(`not joined within ${Duration.format(settings.joinTimeout)}`)
        }),
        Effect.tap(({ stream }) =>
          Effect.sync(() => {
            // The client fetches only for a stream in paused or flowing mode, not for one yet unread.
            stream.on("readable", () => undefined)
            stream.on("error", (error) => Deferred.unsafeDone(broken, Exit.fail(failure(error))))
            stream.on("end", () => Deferred.unsafeDone(broken, Exit.fail(new Error("the message stream ended"))))
          })
        )
      ),
      // Destroyed, not closed: closing waits for the unread messages to be read.
      ({ stream }) => Effect.sync(() => stream.destroy())
    )

    const runGeneration = ({ generation, stream }: Effect.Effect.Success<typeof openStream>) =>
      Effect.gen(function*() {
        const partitions = new Map<number, Progress>()
        /** Wakes the committer: a message was finished. */
        const finished = yield* Queue.sliding<void>(1)
        const commit = Effect.suspend(() => {
          const offsets = [...partitions].flatMap(([partition, progress]) => {
            const offset = resumeAt(progress)
            return offset > progress.committed
              ? [{ topic, partition, offset, leaderEpoch: progress.leaderEpoch }]
              : []
          })
          // After a rebalance the generation is over, and its unfinished work is redelivered.
          if (offsets.length === 0 || consumer.generationId !== generation) return Effect.void
          return Effect.tryPromise(() => consumer.commit({ offsets })).pipe(
            Effect.tap(() =>
              Effect.sync(() => {
                for (const { offset, partition } of offsets) partitions.get(partition)!.committed = offset
              })
            ),
            Effect.catchAll((error) =>
              Effect.logWarning(`cannot commit offsets; trying again: ${describeKafkaError(error)}`).pipe(
                Effect.zipRight(Effect.sleep(Duration.seconds(1))),
                Effect.zipRight(Queue.offer(finished, undefined))
              )
            )
          )
        })
        // Added before the handlers' FiberSet, so run after it interrupted them: commits what they finished.
        yield* Effect.addFinalizer(() => commit.pipe(Effect.timeout(closeTimeout), Effect.ignore))
        const handlers = yield* FiberSet.make<void, never>()
        const slots = yield* Effect.makeSemaphore(settings.concurrency)
        /** Per key, the completion of its latest message: the next one waits for it. */
        const latest = new Map<string, Deferred.Deferred<void>>()
        // A commit per message cost the broker and both programs more CPU than the messages themselves.
        yield* Queue.take(finished).pipe(
          Effect.zipRight(Effect.sleep(settings.commitInterval)),
          Effect.zipRight(commit),
          Effect.forever,
          Effect.forkScoped
        )

        const dispatch = (message: Received) =>
          Effect.gen(function*() {
            yield* slots.take(1)
            const progress = partitions.get(message.partition) ??
              { unfinished: new Set(), next: 0n, committed: -1n, leaderEpoch: -1 }
            partitions.set(message.partition, progress)
            progress.unfinished.add(message.offset)
            progress.next = message.offset + 1n
            progress.leaderEpoch = message.leaderEpoch
            // A message without a key orders with nothing.
            const key: string | undefined = message.key
            const previous = key === undefined ? undefined : latest.get(key)
            const done = yield* Deferred.make<void>()
            if (key !== undefined) latest.set(key, done)
            yield* FiberSet.run(
              handlers,
              Effect.gen(function*() {
                if (previous !== undefined) yield* Deferred.await(previous)
                yield* handle(message)
                progress.unfinished.delete(message.offset)
                if (key !== undefined && latest.get(key) === done) latest.delete(key)
                yield* Deferred.succeed(done, undefined)
                yield* Queue.offer(finished, undefined)
              }).pipe(
                Effect.ensuring(slots.release(1)),
                // `handle` never fails: a defect here is this adapter's, and stops the consumer.
                Effect.tapErrorCause((cause) =>
                  Cause.isInterruptedOnly(cause) ? Effect.void : Deferred.failCause(broken, cause)
                )
              )
            )
          })

        const rejoined = Queue.take(joins).pipe(Effect.repeat({ until: (joined) => joined !== generation }))
        yield* Effect.raceFirst(nextMessage(stream).pipe(Effect.flatMap(dispatch), Effect.forever), rejoined)
      }).pipe(Effect.scoped)

    const streamRef = yield* ScopedRef.fromAcquire(openStream)
    const generations = Effect.gen(function*() {
      while (true) {
        yield* runGeneration(yield* ScopedRef.get(streamRef))
        // The next stream is opened before the last one is destroyed: the topic stays subscribed.
        yield* ScopedRef.set(streamRef, openStream)
      }
    })
    yield* Effect.addFinalizer(() => Deferred.interrupt(stopped))
    yield* Effect.raceFirst(generations, Deferred.await(broken)).pipe(
      Effect.catchAllCause((cause) =>
        Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logError("Kafka consumer stopped for good", cause).pipe(
          Effect.zipRight(Deferred.fail(stopped, new ConsumerStopped({ group, cause: Cause.squash(cause) })))
        )
      ),
      Effect.annotateLogs({ group, topic }),
      Effect.forkScoped
    )
    yield* reportLag(consumer, topic, group).pipe(
      Effect.catchAll((error) => Effect.logDebug(`cannot measure the consumer lag: ${describeKafkaError(error)}`)),
      Effect.repeat(Schedule.spaced(settings.lagInterval)),
      Effect.annotateLogs({ group, topic }),
      Effect.forkScoped
    )
    return {
      stopped: Deferred.await(stopped),
      joined: Effect.map(Deferred.isDone(stopped), (done) => !done && consumer.isActive())
    }
  })

/**
 * Acquires the bus: creates the topic and its dead-letter topic if missing
 * (bounded start-up retries), then one producer for the Scope; each
 * subscription has its own consumer.
 */
export const make = (options: EventBusKafkaOptions): Effect.Effect<EventBusShape, StartupError, Scope.Scope> =>
  Effect.gen(function*() {
    const settings = settingsOf(options)
    const { deadLetterTopic, policy, topic } = settings
    yield* ensureTopics(settings)
    const send = yield* acquireProducer(settings)
    const publish = yield* publisher(settings, send)

    /** Writes `message` to the dead-letter topic, retried until it is written: until then it stays unfinished. */
    const park = (message: Received, group: string, reason: string) =>
      send(deadLetterTopic, [{
        topic: deadLetterTopic,
        key: message.key,
        value: message.value,
        headers: {
          ...Object.fromEntries(message.headers),
          group,
          reason: reason.slice(0, 2_000),
          sourceTopic: message.topic,
          sourcePartition: String(message.partition),
          sourceOffset: String(message.offset)
        }
      }]).pipe(
        Effect.tapError((error) =>
          Effect.logWarning(`cannot write to the dead-letter topic; retrying: ${error.message}`)
        ),
        Effect.retry(backoff(policy)),
        Effect.orDie,
        Effect.annotateLogs({ deadLetterTopic })
      )

    const position = (group: string, message: Received) => ({
      group,
      topic: message.topic,
      partition: message.partition,
      offset: String(message.offset)
    })

    const handleEvent = <R>(group: string, handler: EventHandler<R>) => (message: Received) =>
      decodeEventJson(text(message.value)).pipe(
        Effect.matchEffect({
          onFailure: (error) =>
            Effect.logError("undecodable message; it goes to the dead-letter topic", error.message).pipe(
              Effect.zipRight(park(message, group, error.message)),
              Effect.zipRight(Metric.increment(Metric.tagged(parkedMessages, "group", group)))
            ),
          onSuccess: (event) =>
            deliver(handler, group, event, policy).pipe(
              Effect.flatMap((delivery) =>
                delivery._tag === "Parked" ? park(message, group, delivery.reason) : Effect.void
              )
            )
        }),
        Effect.annotateLogs({ ...position(group, message), correlationId: message.headers.get("correlationId") }),
        withDeliverySpan("EventBusKafka.handle", producerSpanOf(message), position(group, message))
      )

    const handleDeadLetter =
      <R>(group: string, handler: (letter: DeadLetter) => Effect.Effect<void, unknown, R>) => (message: Received) => {
        const letter: DeadLetter = {
          group: message.headers.get("group") ?? "",
          reason: message.headers.get("reason") ?? "",
          key: message.key,
          payload: text(message.value)
        }
        return Effect.suspend(() => handler(letter)).pipe(
          Effect.catchAllCause((cause) => Cause.isInterruptedOnly(cause) ? Effect.interrupt : Effect.fail(cause)),
          Effect.tapError((cause) => Effect.logWarning("dead-letter handler failed", cause)),
          Effect.retry(backoff(policy).pipe(Schedule.intersect(Schedule.recurs(policy.attempts - 1)))),
          // As on the in-memory bus: a dead letter has nowhere further to go, and stays in its topic for other groups.
          Effect.catchAll((cause) => Effect.logError("dead-letter handler kept failing; the letter is skipped", cause)),
          Effect.annotateLogs(position(group, message))
        )
      }

    const subscribe = Effect.fn("EventBusKafka.subscribe")(function*<R>(group: string, handler: EventHandler<R>) {
      yield* annotateSpan({ group, topic })
      return yield* consume(settings, topic, group, handleEvent(group, handler))
    })

    const subscribeDeadLetters = Effect.fn("EventBusKafka.subscribeDeadLetters")(
      function*<R>(group: string, handler: (letter: DeadLetter) => Effect.Effect<void, unknown, R>) {
        yield* annotateSpan({ group, topic: deadLetterTopic })
        return yield* consume(settings, deadLetterTopic, group, handleDeadLetter(group, handler))
      }
    )

    return { publish, subscribe, subscribeDeadLetters } satisfies EventBusShape
  })

/** The bus on Kafka for the lifetime of the Layer. */
export const layer = (options: EventBusKafkaOptions): Layer.Layer<EventBus, StartupError> =>
  Layer.scoped(EventBus, make(options))

/** `KAFKA_BROKERS`: comma-separated `host:port`s, default `127.0.0.1:9092`. */
export const brokersConfig: Config.Config<ReadonlyArray<string>> = Config.string("KAFKA_BROKERS").pipe(
  Config.withDefault("127.0.0.1:9092"),
  Config.map((list) => list.split(",").map((broker) => broker.trim()).filter((broker) => broker !== "")),
  Config.validate({ message: "must list at least one host:port", validation: (list) => list.length > 0 })
)

/** `KAFKA_TOPIC`, default `orders.events`; its dead letters go to `<topic>.dlq`. */
export const topicConfig: Config.Config<string> = Config.string("KAFKA_TOPIC").pipe(
  Config.withDefault("orders.events")
)

/** `KAFKA_CLIENT_ID`, default `orders`. */
export const clientIdConfig: Config.Config<string> = Config.string("KAFKA_CLIENT_ID").pipe(
  Config.withDefault("orders")
)

/**
 * `KAFKA_BROKERS` (comma-separated, default `127.0.0.1:9092`), `KAFKA_TOPIC`
 * (default `orders.events`), `KAFKA_PARTITIONS` (default 12),
 * `KAFKA_CLIENT_ID` (default `orders`), `KAFKA_REPLICATION_FACTOR` (default 1).
 */
export const layerConfig = Layer.unwrapEffect(
  Config.all({
    brokers: brokersConfig,
    topic: topicConfig,
    partitions: Config.integer("KAFKA_PARTITIONS").pipe(
      Config.withDefault(12),
      Config.validate({ message: "must be at least 1", validation: (n) => n >= 1 })
    ),
    replicationFactor: Config.integer("KAFKA_REPLICATION_FACTOR").pipe(Config.withDefault(1)),
    clientId: clientIdConfig
  }).pipe(Effect.map(layer))
)
