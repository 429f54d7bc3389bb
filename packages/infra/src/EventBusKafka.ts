/**
 * The EventBus port on Kafka (kafkajs): one topic keyed by order id, so that
 * the events of one order share a partition and keep their order; one consumer
 * group per subscriber kind; undecodable messages go to a dead-letter topic.
 */
import type { EventBusShape, EventHandler } from "@orders/domain/EventBus"
import { EventBus, handleUntilDone, redeliverySchedule } from "@orders/domain/EventBus"
import { ServiceUnavailable } from "@orders/domain/OrderError"
import type { EventDecodeError, OrderEventEnvelope } from "@orders/domain/OrderEvent"
import { decodeEventJson, encodeEvent } from "@orders/domain/OrderEvent"
import type { Scope } from "effect"
import { Cause, Config, Deferred, Duration, Effect, Exit, Fiber, Layer, Runtime, ScopedRef } from "effect"
import type { Consumer, EachMessagePayload, KafkaMessage, logCreator, Message, Producer, RetryOptions } from "kafkajs"
// kafkajs is CommonJS whose named exports Node's ESM loader cannot all detect.
import kafkajs from "kafkajs"
import { connectWithRetry, StartupError } from "./Startup.js"

const { Kafka, KafkaJSError, logLevel, Partitioners } = kafkajs

export interface EventBusKafkaOptions {
  readonly brokers: ReadonlyArray<string>
  readonly clientId: string
  /** Default `orders.events`. */
  readonly topic?: string
  /** Partitions of the topics created at start-up, and how many a consumer handles at once. Default 12: the processor works on that many orders at once. */
  readonly partitions?: number
  /** Default 1 (a single broker). */
  readonly replicationFactor?: number
  /** Where undecodable messages go. Default `<topic>.dlq`. */
  readonly deadLetterTopic?: string
  /** Without a heartbeat for this long a member is dropped from its group. Default 10 s (the broker's minimum is 6 s). */
  readonly sessionTimeout?: Duration.DurationInput
  /** Default 1 s. */
  readonly heartbeatInterval?: Duration.DurationInput
  /** How long a rebalance waits for members busy with a message before it drops them. Default 15 s. */
  readonly rebalanceTimeout?: Duration.DurationInput
  /** Longest fetch long-poll; a closing consumer waits for the one in flight. Default 1 s. */
  readonly maxWaitTime?: Duration.DurationInput
  /** How long `subscribe` waits for the consumer to join its group. Default 30 s. */
  readonly joinTimeout?: Duration.DurationInput
  /** Idempotent producer (no duplicates from kafkajs's own retries, order kept). Default true. */
  readonly idempotent?: boolean
}

const unavailable = (what: string) => (cause: unknown) =>
  new ServiceUnavailable({
    service: "Kafka",
    message: `${what}: ${cause instanceof Error ? cause.message : String(cause)}`
  })

/**
 * kafkajs logs every failed request at error level, even those it retries and
 * recovers from (a coordinator still loading, a rebalance): those become debug
 * lines, so that a warning or an error means something.
 */
const quietNamespaces = new Set(["Connection", "BrokerPool"])
const quietMessages = [
  "The group is rebalancing, re-joining",
  // Deliberate: a publish must fail within seconds when the broker is gone (see the producer).
  "Limiting retries for the idempotent producer"
]

const effectLogCreator = (runtime: Runtime.Runtime<never>): logCreator => () => ({ level, log, namespace }) => {
  const { logger: _logger, message, stack: _stack, timestamp: _timestamp, ...extra } = log
  const quiet = quietNamespaces.has(namespace) || quietMessages.some((prefix) => message.startsWith(prefix))
  const line = quiet || level > logLevel.WARN
    ? Effect.logDebug(message)
    : level === logLevel.WARN
    ? Effect.logWarning(message)
    : Effect.logError(message)
  Runtime.runSync(runtime)(line.pipe(Effect.annotateLogs({ ...extra, kafkajs: namespace })))
}

/** Independent of NODE_ENV, which kafkajs reads to choose its default retries. */
const clientRetry: RetryOptions = { initialRetryTime: 100, maxRetryTime: 2_000, retries: 5 }

/** Thrown from `eachMessage` so that kafkajs neither resolves nor commits the message's offset. */
const notHandled = (reason: string) => new KafkaJSError(reason, { retriable: true })

const headerText = (value: unknown) => String(value).slice(0, 2_000)

/**
 * Acquires the bus: checks the broker, creates the topic and its dead-letter
 * topic if missing, connects one producer for the Scope.
 */
export const make = (options: EventBusKafkaOptions): Effect.Effect<EventBusShape, StartupError, Scope.Scope> =>
  Effect.gen(function*() {
    const brokers = [...options.brokers]
    const address = brokers.join(",")
    const topic = options.topic ?? "orders.events"
    const deadLetterTopic = options.deadLetterTopic ?? `${topic}.dlq`
    const partitions = options.partitions ?? 12
    const idempotent = options.idempotent ?? true
    const millis = (duration: Duration.DurationInput | undefined, fallback: Duration.DurationInput) =>
      Duration.toMillis(duration ?? fallback)
    const sessionTimeout = millis(options.sessionTimeout, "10 seconds")
    const heartbeatInterval = millis(options.heartbeatInterval, "1 second")
    const rebalanceTimeout = millis(options.rebalanceTimeout, "15 seconds")
    const maxWaitTimeInMs = millis(options.maxWaitTime, "1 second")
    const joinTimeout = Duration.decode(options.joinTimeout ?? "30 seconds")

    const client = {
      brokers,
      clientId: options.clientId,
      connectionTimeout: 3_000,
      requestTimeout: 10_000,
      logLevel: logLevel.WARN,
      logCreator: effectLogCreator(yield* Effect.runtime<never>())
    }
    const kafka = new Kafka({ ...client, retry: clientRetry })

    // Connecting at start-up is retried by connectWithRetry alone (kafkajs
    // retries connections with its client-wide policy, which would multiply
    // the attempts); the admin's requests keep kafkajs's retries.
    const admin = new Kafka({ ...client, retry: { retries: 0 } }).admin({ retry: clientRetry })
    yield* Effect.acquireRelease(
      connectWithRetry("Kafka", address, () => admin.connect()),
      () => Effect.promise(() => admin.disconnect().catch(() => undefined))
    ).pipe(
      Effect.zipRight(Effect.tryPromise({
        try: () =>
          admin.createTopics({
            waitForLeaders: true,
            topics: [topic, deadLetterTopic].map((name) => ({
              topic: name,
              numPartitions: partitions,
              replicationFactor: options.replicationFactor ?? 1
            }))
          }),
        catch: (cause) => new StartupError({ service: "Kafka", address, cause })
      })),
      Effect.scoped
    )

    const acquireProducer = Effect.acquireRelease(
      Effect.suspend(() => {
        const producer = kafka.producer({
          idempotent,
          // One request at a time keeps the order of sends to a partition across retries.
          maxInFlightRequests: 1,
          // The idempotent producer would retry forever: bounded, so that a
          // publish fails with ServiceUnavailable in seconds when the broker is gone.
          retry: clientRetry,
          allowAutoTopicCreation: false,
          createPartitioner: Partitioners.DefaultPartitioner
        })
        return Effect.tryPromise({ try: () => producer.connect(), catch: unavailable("cannot connect the producer") })
          .pipe(Effect.as(producer))
      }),
      (producer) => Effect.promise(() => producer.disconnect().catch(() => undefined))
    )
    const producerRef = yield* ScopedRef.fromAcquire(acquireProducer).pipe(
      Effect.mapError((cause) => new StartupError({ service: "Kafka", address, cause }))
    )
    // After a failed send an idempotent producer's sequence numbers may no
    // longer match the broker's (a batch written whose answer was lost, or
    // producer state expired on the broker): the broker would then drop the
    // next batch as a duplicate or reject every send. A new producer id starts
    // afresh; it is made at the next send, so a failing send fails fast.
    let stale: Producer | undefined
    const renewing = yield* Effect.makeSemaphore(1)
    const currentProducer = renewing.withPermits(1)(Effect.gen(function*() {
      const producer = yield* ScopedRef.get(producerRef)
      if (producer !== stale) return producer
      yield* ScopedRef.set(producerRef, acquireProducer)
      return yield* ScopedRef.get(producerRef)
    }))

    const send = (to: string, messages: Array<Message>) =>
      Effect.gen(function*() {
        const producer = yield* currentProducer
        yield* Effect.tryPromise({
          try: () => producer.send({ topic: to, acks: -1, messages }),
          catch: unavailable(`cannot publish to ${to}`)
        }).pipe(Effect.tapError(() =>
          Effect.sync(() => {
            if (idempotent) stale = producer
          })
        ))
      })

    const publish = Effect.fn("EventBusKafka.publish")(function*(events: ReadonlyArray<OrderEventEnvelope>) {
      yield* Effect.annotateCurrentSpan({ topic, count: events.length })
      if (events.length === 0) return
      yield* send(
        topic,
        events.map((event) => ({
          key: event.streamId,
          value: JSON.stringify(encodeEvent(event)),
          headers: {
            eventType: event.type,
            eventId: event.eventId,
            correlationId: event.metadata.correlationId
          }
        }))
      )
    })

    const deadLetter = (payload: EachMessagePayload, error: EventDecodeError) => {
      const { message, partition } = payload
      return Effect.logError("undecodable message; it goes to the dead-letter topic", error.message).pipe(
        Effect.zipRight(
          send(deadLetterTopic, [{
            key: message.key,
            value: message.value,
            headers: {
              ...message.headers,
              error: headerText(error.message),
              sourceTopic: payload.topic,
              sourcePartition: String(partition),
              sourceOffset: message.offset
            }
          }]).pipe(
            Effect.tapError((failure) => Effect.logWarning("cannot write to the dead-letter topic; retrying", failure)),
            Effect.retry(redeliverySchedule)
          )
        ),
        Effect.annotateLogs({ deadLetterTopic }),
        Effect.orDie
      )
    }

    /** Keeps the member in its group while a handler retries for longer than the session timeout. */
    const heartbeats = (payload: EachMessagePayload) =>
      Effect.tryPromise(() => payload.heartbeat()).pipe(
        Effect.catchAll((error) => Effect.logDebug("heartbeat failed", error)),
        Effect.delay(Duration.millis(heartbeatInterval)),
        Effect.forever
      )

    const handleMessage = <R>(group: string, handler: EventHandler<R>, payload: EachMessagePayload) => {
      const message: KafkaMessage = payload.message
      const position = { group, topic: payload.topic, partition: payload.partition, offset: message.offset }
      return decodeEventJson(message.value?.toString("utf8") ?? "").pipe(
        Effect.matchEffect({
          onFailure: (error) => deadLetter(payload, error),
          onSuccess: (event) => handleUntilDone(handler, group, event)
        }),
        Effect.raceFirst(heartbeats(payload)),
        Effect.tapDefect((cause) => Effect.logError("event handler died; the event will be delivered again", cause)),
        Effect.annotateLogs(position),
        Effect.withSpan("EventBusKafka.handle", { attributes: position, root: true })
      )
    }

    const subscribe = Effect.fn("EventBusKafka.subscribe")(
      function*<R>(group: string, handler: EventHandler<R>) {
        yield* Effect.annotateCurrentSpan({ group, topic })
        const runtime = yield* Effect.runtime<R>()
        const inFlight = new Set<Fiber.RuntimeFiber<void>>()
        let closing = false
        const joined = yield* Deferred.make<void, Error>()

        const consumer: Consumer = kafka.consumer({
          groupId: group,
          sessionTimeout,
          heartbeatInterval,
          rebalanceTimeout,
          maxWaitTimeInMs,
          allowAutoTopicCreation: false
        })
        const listeners = [
          consumer.on(consumer.events.GROUP_JOIN, () => Deferred.unsafeDone(joined, Exit.void)),
          consumer.on(consumer.events.CRASH, ({ payload }) => {
            if (payload.restart) return
            Deferred.unsafeDone(joined, Exit.fail(payload.error))
            Runtime.runSync(runtime)(
              Effect.logError("Kafka consumer stopped after an error it does not retry", payload.error).pipe(
                Effect.annotateLogs({ group, topic })
              )
            )
          })
        ]

        // The message is handled in a fiber of the caller's runtime; the offset
        // is committed only once `eachMessage` resolves, i.e. after the handler
        // succeeded (at least once).
        const eachMessage = (payload: EachMessagePayload): Promise<void> => {
          if (closing) return Promise.reject(notHandled("the consumer is closing"))
          const fiber = Runtime.runFork(runtime)(handleMessage(group, handler, payload))
          inFlight.add(fiber)
          return new Promise((resolve, reject) =>
            fiber.addObserver((exit) => {
              inFlight.delete(fiber)
              if (Exit.isSuccess(exit)) resolve()
              else reject(notHandled(Cause.isInterruptedOnly(exit.cause) ? "the consumer is closing" : "handler died"))
            })
          )
        }

        const close = Effect.gen(function*() {
          closing = true
          // disconnect() stops the fetch loop at once but waits for the message
          // in hand; interrupting its handler (not committed, so delivered
          // again) lets it finish even when the handler would retry forever.
          const disconnected = consumer.disconnect().then(() => undefined, (error: unknown) => error)
          yield* Effect.forEach([...inFlight], Fiber.interruptFork, { discard: true })
          const error = yield* Effect.promise(() => disconnected).pipe(
            Effect.timeoutFail({ duration: Duration.seconds(10), onTimeout: () => "disconnect timed out" })
          )
          if (error !== undefined) yield* Effect.logWarning("Kafka consumer did not disconnect cleanly", error)
        }).pipe(
          Effect.catchAll((error) => Effect.logWarning("Kafka consumer did not disconnect cleanly", error)),
          Effect.ensuring(Effect.sync(() => listeners.forEach((remove) => remove()))),
          Effect.annotateLogs({ group, topic })
        )

        yield* Effect.acquireRelease(
          Effect.tryPromise({ try: () => consumer.connect(), catch: unavailable(`consumer ${group} cannot connect`) }),
          () => close
        )
        yield* Effect.tryPromise({
          try: async () => {
            await consumer.subscribe({ topics: [topic], fromBeginning: true })
            // Partitions are handled concurrently, each one a message at a time: an order's events stay in order.
            await consumer.run({ partitionsConsumedConcurrently: partitions, eachMessage })
          },
          catch: unavailable(`consumer ${group} cannot start`)
        })
        // Returning only once the group is joined: an event published after
        // subscribe returned is then consumed even by a brand-new group.
        yield* Deferred.await(joined).pipe(
          Effect.mapError(unavailable(`consumer ${group} cannot join its group`)),
          Effect.timeoutFail({
            duration: joinTimeout,
            onTimeout: () =>
              unavailable(`consumer ${group}`)(`did not join its group within ${Duration.format(joinTimeout)}`)
          })
        )
      }
    )

    return { publish, subscribe } satisfies EventBusShape
  })

/** The bus on Kafka for the lifetime of the Layer. */
export const layer = (options: EventBusKafkaOptions): Layer.Layer<EventBus, StartupError> =>
  Layer.scoped(EventBus, make(options))

/**
 * `KAFKA_BROKERS` (comma-separated, default `127.0.0.1:9092`), `KAFKA_TOPIC`
 * (default `orders.events`), `KAFKA_PARTITIONS` (default 12),
 * `KAFKA_CLIENT_ID` (default `orders`), `KAFKA_REPLICATION_FACTOR` (default 1).
 */
export const layerConfig = Layer.unwrapEffect(
  Config.all({
    brokers: Config.string("KAFKA_BROKERS").pipe(
      Config.withDefault("127.0.0.1:9092"),
      Config.map((list) => list.split(",").map((broker) => broker.trim()).filter((broker) => broker !== "")),
      Config.validate({ message: "must list at least one host:port", validation: (list) => list.length > 0 })
    ),
    topic: Config.string("KAFKA_TOPIC").pipe(Config.withDefault("orders.events")),
    partitions: Config.integer("KAFKA_PARTITIONS").pipe(
      Config.withDefault(12),
      Config.validate({ message: "must be at least 1", validation: (n) => n >= 1 })
    ),
    replicationFactor: Config.integer("KAFKA_REPLICATION_FACTOR").pipe(Config.withDefault(1)),
    clientId: Config.string("KAFKA_CLIENT_ID").pipe(Config.withDefault("orders"))
  }).pipe(Effect.map(layer))
)
