/**
 * The real stack as the integration tests use it: its addresses, and fresh
 * databases, schemas and topics that live as long as a Scope, so that runs
 * never see each other's data.
 */
import { Admin } from "@platformatic/kafka"
import { Effect } from "effect"
import { MongoClient } from "mongodb"
import pg from "pg"

export const mongoUri = process.env.MONGODB_URI ?? "mongodb://127.0.0.1:27017/orders"
export const databaseUrl = process.env.DATABASE_URL ?? "postgres://orders:orders@127.0.0.1:5432/orders"
export const kafkaBrokers = (process.env.KAFKA_BROKERS ?? "127.0.0.1:9092").split(",")

const uniqueName = (prefix: string) => `${prefix}_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`

export const withMongo = <A>(run: (client: MongoClient) => Promise<A>) =>
  Effect.promise(async () => {
    const client = new MongoClient(mongoUri, { serverSelectionTimeoutMS: 5_000 })
    try {
      return await run(client)
    } finally {
      await client.close()
    }
  })

/** A MongoDB database for the scope (created on first write), dropped at the end. */
export const freshMongoDatabase = Effect.acquireRelease(
  Effect.sync(() => uniqueName("orders_test")),
  (database) => withMongo((client) => client.db(database).dropDatabase())
)

/** The connection string of `database` on the stack's MongoDB server. */
export const mongoUriFor = (database: string) => {
  const url = new URL(mongoUri)
  url.pathname = `/${database}`
  return url.toString()
}

export const withPostgres = <A>(run: (client: pg.Client) => Promise<A>) =>
  Effect.promise(async () => {
    const client = new pg.Client({ connectionString: databaseUrl })
    await client.connect()
    try {
      return await run(client)
    } finally {
      await client.end()
    }
  })

/**
 * A PostgreSQL schema for the scope, dropped with everything in it at the end.
 * The `orders` role owns its database but may not create databases.
 */
export const freshPgSchema = (schema = uniqueName("orders_test")) =>
  Effect.acquireRelease(
    withPostgres((client) => client.query(`CREATE SCHEMA ${schema}`)).pipe(Effect.as(schema)),
    () => withPostgres((client) => client.query(`DROP SCHEMA ${schema} CASCADE`))
  )

/** The connection string that selects `schema` through `search_path`. */
export const schemaUrl = (schema: string) => {
  const url = new URL(databaseUrl)
  url.searchParams.set("options", `-c search_path=${schema}`)
  return url.toString()
}

/** A Kafka topic name for the scope; the topic and its dead-letter topic are deleted at the end. */
export const freshKafkaTopic = Effect.acquireRelease(
  Effect.sync(() => `orders.events.${uniqueName("test")}`),
  (topic) =>
    Effect.promise(async () => {
      const admin = new Admin({ clientId: "orders-test", bootstrapBrokers: kafkaBrokers })
      await admin.deleteTopics({ topics: [topic, `${topic}.dlq`] }).catch(() => undefined)
      await admin.close()
    })
)

/**
 * Fresh stores for the scope, and the environment that points the programs at
 * them (`MONGODB_URI`, `DATABASE_URL`, `KAFKA_TOPIC`).
 */
export const freshStack = Effect.gen(function*() {
  const database = yield* freshMongoDatabase
  const schema = yield* freshPgSchema()
  const topic = yield* freshKafkaTopic
  const env = { MONGODB_URI: mongoUriFor(database), DATABASE_URL: schemaUrl(schema), KAFKA_TOPIC: topic }
  return { database, schema, topic, env }
})
