/**
 * What the operator commands work on, fresh for a Scope: an event store
 * database, a read-model schema (migrated) and a topic, with the commands'
 * layers built on them.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { Order } from "@orders/domain/Order"
import { Effect, Layer, Redacted } from "effect"
import { EventStoreScan } from "../../src/EventStoreScan.js"
import { KafkaAdmin } from "../../src/KafkaAdmin.js"
import * as OrderReadModelPg from "../../src/OrderReadModelPg.js"
import type { SeedOptions } from "./seedEventStore.js"
import { seedEventStore } from "./seedEventStore.js"
import {
  freshKafkaTopic,
  freshMongoDatabase,
  freshPgSchema,
  kafkaBrokers,
  mongoUriFor,
  schemaUrl,
  withMongo
} from "./stack.js"

export const freshOperatorStack = Effect.gen(function*() {
  const database = yield* freshMongoDatabase
  const schema = yield* freshPgSchema()
  const topic = yield* freshKafkaTopic
  const mongo = { uri: mongoUriFor(database), database }
  const url = Redacted.make(schemaUrl(schema))
  const context = yield* Layer.build(Layer.mergeAll(
    EventStoreScan.Default(mongo),
    OrderReadModelPg.sqlLayer({ url }),
    KafkaAdmin.Default({ brokers: kafkaBrokers, clientId: "orders-test" })
  ))
  const sql = yield* Effect.provide(SqlClient.SqlClient, context)
  return {
    database,
    schema,
    topic,
    mongo,
    url,
    context,
    sql,
    /** Seeds the event store directly (see `seedEventStore`). */
    seed: (options: SeedOptions) =>
      withMongo((client) => Effect.runPromise(seedEventStore(client.db(database), options))),
    /** Writes the rows of these orders to the read model, as the projector would. */
    project: (orders: ReadonlyArray<Order>) =>
      OrderReadModelPg.saveRows(sql, OrderReadModelPg.ORDERS, orders.map(OrderReadModelPg.toRow)).pipe(Effect.orDie)
  }
})

export type OperatorStack = Effect.Effect.Success<typeof freshOperatorStack>
