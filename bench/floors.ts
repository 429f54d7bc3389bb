/**
 * The floors: what the servers and clients under the product do at best on
 * this machine, measured in the same run, at the same concurrency and with
 * the same clients as the product, so that each figure of the bench can be
 * read as a ratio to the work it cannot avoid.
 *
 * - http: a bare `node:http` server answering a small JSON, under autocannon;
 * - effect-http: the same JSON from one `HttpApi` endpoint on
 *   `@effect/platform-node`, none of the API's middleware: what the framework
 *   the API is built on costs a read before the API's own code runs;
 * - mongo: `insertOne` of a one-event commit with the `mongodb` driver;
 * - postgres: the read model's upsert (`saveRows`) through its own pool;
 * - kafka: one record produced (acks from all replicas) until a consumer reads
 *   it, with `@platformatic/kafka`.
 *
 * Each floor gets fresh stores, dropped when it is done.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { encodeEvent } from "@orders/domain/OrderEvent"
import { lifecycle, uniqueOrderId } from "@orders/domain/testing/fixtures"
import type { CommitDocument } from "@orders/infra/EventStoreMongo"
import { COMMITS } from "@orders/infra/EventStoreMongo"
import * as OrderReadModelPg from "@orders/infra/OrderReadModelPg"
import { withAdmin } from "@orders/infra/testing/kafka"
import { freePort } from "@orders/infra/testing/network"
import {
  freshKafkaTopic,
  freshMongoDatabase,
  freshPgSchema,
  kafkaBrokers,
  mongoUriFor,
  schemaUrl
} from "@orders/infra/testing/stack"
import {
  Consumer,
  MessagesStreamModes,
  ProduceAcks,
  Producer,
  stringDeserializers,
  stringSerializers
} from "@platformatic/kafka"
import type { Scope } from "effect"
import { Context, Duration, Effect, Layer, Redacted, Schedule } from "effect"
import { MongoClient } from "mongodb"
import type { Measurement, Window } from "./load.js"
import { closedLoop, httpLoad, summary } from "./load.js"
import type { FloorName } from "./settings.js"
import { ready, startBenchProgram } from "./targets.js"

export interface Floor {
  readonly label: string
  /** The server's version, when it tells. */
  readonly server?: string
  readonly measure: (window: Window) => Effect.Effect<Measurement>
}

export interface FloorReport {
  readonly name: FloorName
  readonly label: string
  readonly server?: string
  readonly steps: ReadonlyArray<{ readonly concurrency: number; readonly measurement: Measurement }>
}

/** A server beside the bench, under autocannon: `GET /bench-order` again and again. */
const httpFloor = (entry: string, label: string): Effect.Effect<Floor, never, Scope.Scope> =>
  Effect.gen(function*() {
    const port = yield* Effect.promise(freePort)
    // startProgram runs `packages/<entry>`; the floors' servers live beside the bench.
    const server = yield* startBenchProgram(`../bench/${entry}`, { PORT: String(port) })
    yield* ready(server, "Listening on")
    const url = `http://127.0.0.1:${port}`
    return {
      label,
      server: `node ${process.version}`,
      measure: (window) => httpLoad(window, { url, requests: () => [{ method: "GET", path: "/bench-order" }] })
    }
  })

const http = httpFloor("bareHttpServer.ts", "bare node:http, GET of a small JSON")
const effectHttp = httpFloor("bareHttpApi.ts", "HttpApi GET /:id, no middleware")

/** Closes a client within 10 seconds, whatever happens: the bench must not hang on its way out. */
const closing = (close: () => Promise<unknown>) =>
  Effect.tryPromise(close).pipe(Effect.timeout(Duration.seconds(10)), Effect.ignore)

/** A client for the scope, with the event store's write concern. */
export const mongoClient = (uri: string) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new MongoClient(uri, {
        appName: "orders-bench",
        writeConcern: { w: "majority" },
        serverSelectionTimeoutMS: 5_000
      })
        .connect()
    ),
    (client) => closing(() => client.close())
  )

const mongo: Effect.Effect<Floor, never, Scope.Scope> = Effect.gen(function*() {
  const database = yield* freshMongoDatabase
  const client = yield* mongoClient(mongoUriFor(database))
  const commits = client.db(database).collection<CommitDocument>(COMMITS)
  const buildInfo = yield* Effect.promise(() => client.db(database).command({ buildInfo: 1 }))
  // One real encoded event, shared: the floor pays for the insert, not for encoding.
  const events = [encodeEvent(lifecycle(uniqueOrderId("floor"), 1)[0]!)]
  let next = 0
  return {
    label: "insertOne, one-event commit (mongodb)",
    server: buildInfo.ferretdbVersion === undefined
      ? `MongoDB ${buildInfo.version}`
      : `FerretDB ${buildInfo.ferretdbVersion}`,
    measure: (window) =>
      closedLoop(window, async () => {
        const streamId = `floor-${next++}`
        await commits.insertOne({ _id: `${streamId}:0`, streamId, previous: 0, version: 1, events })
      })
  }
})

const statuses = ["new", "processing", "processed"] as const

const postgres: Effect.Effect<Floor, never, Scope.Scope> = Effect.gen(function*() {
  const schema = yield* freshPgSchema()
  const context = yield* Layer.build(OrderReadModelPg.sqlLayer({ url: Redacted.make(schemaUrl(schema)) })).pipe(
    Effect.orDie
  )
  const sql = Context.get(context, SqlClient.SqlClient)
  const version = yield* sql<{ server_version: string }>`SHOW server_version`.pipe(Effect.orDie)
  // Each client moves its orders through versions 1, 2, 3, as the projector does.
  const done: Array<number> = []
  return {
    label: "read-model upsert (saveRows, pool of 10)",
    server: `PostgreSQL ${version[0]?.server_version}`,
    measure: (window) =>
      closedLoop(window, (client) => {
        const step = done[client] ?? 0
        done[client] = step + 1
        const row = {
          id: `floor-${window.concurrency}-${client}-${Math.floor(step / 3)}`,
          name: "floor order",
          status: statuses[step % 3]!,
          version: step % 3 + 1,
          failure_reason: null,
          failure_code: null
        }
        return Effect.runPromise(OrderReadModelPg.saveRows(sql, OrderReadModelPg.ORDERS, [row]))
      })
  }
})

const roundTripTimeout = 30_000

const kafka: Effect.Effect<Floor, never, Scope.Scope> = Effect.gen(function*() {
  const topic = yield* freshKafkaTopic
  yield* withAdmin((admin) => admin.createTopics({ topics: [topic], partitions: 12, replicas: 1 }))
  const client = { clientId: "orders-bench-floor", bootstrapBrokers: kafkaBrokers }
  // The product's producer settings: acks from all replicas per send, one request in flight, no idempotence.
  const producer = yield* Effect.acquireRelease(
    Effect.sync(() => new Producer({ ...client, idempotent: false, maxInflights: 1, serializers: stringSerializers })),
    (producer) => closing(() => producer.close())
  )
  const consumer = yield* Effect.acquireRelease(
    Effect.sync(() =>
      new Consumer({
        ...client,
        groupId: `orders-bench-floor-${crypto.randomUUID()}`,
        maxWaitTime: 1_000,
        autocommit: false,
        deserializers: stringDeserializers
      })
    ),
    (consumer) => closing(() => consumer.close(true))
  )
  const arrivals = new Map<string, () => void>()
  let broken: unknown
  const stream = yield* Effect.promise(() => consumer.consume({ topics: [topic], mode: MessagesStreamModes.EARLIEST }))
  stream.on("error", (error) => (broken = error))
  stream.on("data", (message) => {
    const arrived = message.value === undefined ? undefined : arrivals.get(message.value)
    if (arrived !== undefined) {
      arrivals.delete(message.value!)
      arrived()
    }
  })
  const roundTrip = (value: string) =>
    new Promise<void>((resolve, reject) => {
      if (broken !== undefined) return reject(broken)
      const timer = setTimeout(() => {
        arrivals.delete(value)
        reject(new Error(`record ${value} not consumed within ${roundTripTimeout} ms`))
      }, roundTripTimeout)
      arrivals.set(value, () => {
        clearTimeout(timer)
        resolve()
      })
      producer.send({ acks: ProduceAcks.ALL, messages: [{ topic, key: value, value }] }).catch((error) => {
        clearTimeout(timer)
        arrivals.delete(value)
        reject(error)
      })
    })
  // Ready once a record comes back: partitions have leaders and the consumer has joined its group.
  yield* Effect.tryPromise(() => roundTrip(`probe-${crypto.randomUUID()}`)).pipe(
    Effect.retry(Schedule.spaced(Duration.millis(500))),
    Effect.timeout(Duration.minutes(1)),
    Effect.orDie
  )
  let next = 0
  return {
    label: "produce → consume (@platformatic/kafka)",
    measure: (window) => closedLoop(window, () => roundTrip(`floor-${next++}`))
  }
})

const floors: Record<FloorName, Effect.Effect<Floor, never, Scope.Scope>> = {
  http,
  "effect-http": effectHttp,
  mongo,
  postgres,
  kafka
}

/** Each floor in turn, at each concurrency; its stores and programs are gone before the next one starts. */
export const measureFloors = (
  names: ReadonlyArray<FloorName>,
  concurrencies: ReadonlyArray<number>,
  window: (concurrency: number) => Window,
  progress: (line: string) => Effect.Effect<void>
) =>
  Effect.forEach(names, (name) =>
    Effect.gen(function*() {
      const floor = yield* floors[name]
      const steps = yield* Effect.forEach(concurrencies, (concurrency) =>
        floor.measure(window(concurrency)).pipe(
          Effect.tap((measurement) => progress(`floor ${name} c=${concurrency}: ${summary(measurement)}`)),
          Effect.map((measurement) => ({ concurrency, measurement }))
        ))
      return {
        name,
        label: floor.label,
        ...(floor.server === undefined ? {} : { server: floor.server }),
        steps
      } satisfies FloorReport
    }).pipe(Effect.scoped))
