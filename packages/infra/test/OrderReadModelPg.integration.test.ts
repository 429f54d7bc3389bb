import { describe, expect, it } from "@effect/vitest"
import { Order } from "@orders/domain/Order"
import { OrderId } from "@orders/domain/OrderEvent"
import { OrderReadModel } from "@orders/domain/OrderReadModel"
import { ConfigProvider, Duration, Effect, Either, Layer, Logger } from "effect"
import type pg from "pg"
import { orderReadModelContract } from "../../domain/test/contract/OrderReadModelContract.js"
import * as OrderReadModelPg from "../src/OrderReadModelPg.js"
import { freePort, tcpProxy } from "./support/network.js"
import { databaseUrl, freshPgSchema, schemaUrl, withPostgres } from "./support/stack.js"

const query = <R extends pg.QueryResultRow>(schema: string, sql: string) =>
  withPostgres((client) => client.query<R>(sql.replaceAll("$schema", schema))).pipe(Effect.map((result) => result.rows))

orderReadModelContract(
  "PostgreSQL",
  Layer.unwrapScoped(freshPgSchema().pipe(Effect.map((schema) => OrderReadModelPg.layer({ url: schemaUrl(schema) }))))
)

const closedPort = Effect.promise(freePort)

describe("OrderReadModelPg", () => {
  it.scopedLive("survives losing its idle connections, fails with ServiceUnavailable while the server is gone, and recovers", () =>
    Effect.gen(function*() {
      const schema = yield* freshPgSchema()
      const proxy = yield* tcpProxy(new URL(databaseUrl), 5432)
      const url = new URL(schemaUrl(schema))
      url.port = String(proxy.port)
      const logged: Array<string> = []
      const readModel = yield* OrderReadModelPg.make({ url: url.toString() }).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, Logger.make(({ message }) => logged.push(String(message)))))
      )
      const order = Order.make({ id: OrderId.make("outage"), name: "book", status: "new", version: 1 })
      yield* readModel.save(order)

      // The pool's idle connections die here: its "error" event must be logged, not crash the process.
      yield* Effect.promise(() => proxy.stop())
      yield* Effect.sleep(Duration.millis(300))
      expect(logged.some((line) => line.includes("PostgreSQL idle connection lost"))).toBe(true)
      const [elapsed, results] = yield* Effect.all([
        Effect.either(Effect.asVoid(readModel.get(order.id))),
        Effect.either(readModel.save(order))
      ]).pipe(Effect.timed)
      for (const result of results) {
        expect(Either.isLeft(result) && result.left).toMatchObject({
          _tag: "ServiceUnavailable",
          service: "PostgreSQL"
        })
      }
      expect(Duration.toMillis(elapsed)).toBeLessThan(10_000)

      yield* Effect.promise(() => proxy.start())
      expect((yield* readModel.get(order.id)).pipe((found) => found._tag)).toBe("Some")
    }))

  it.scoped("migrates once when two processes start together", () =>
    Effect.gen(function*() {
      const schema = yield* freshPgSchema()
      const url = schemaUrl(schema)
      yield* Effect.all([OrderReadModelPg.make({ url }), OrderReadModelPg.make({ url })], { concurrency: 2 })
      const applied = yield* query<{ version: number }>(
        schema,
        "SELECT version FROM $schema.schema_migrations ORDER BY version"
      )
      expect(applied.map((row) => row.version)).toEqual(OrderReadModelPg.migrations.map((_, i) => i + 1))
      const tables = yield* query<{ table_name: string }>(
        schema,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = '$schema' ORDER BY table_name"
      )
      expect(tables.map((row) => row.table_name)).toEqual(["orders", "schema_migrations"])
      // A later start finds nothing left to do.
      yield* OrderReadModelPg.make({ url })
      expect(yield* query(schema, "SELECT version FROM $schema.schema_migrations")).toHaveLength(
        OrderReadModelPg.migrations.length
      )
    }))

  it.scoped("sorts ids byte-wise, as the in-memory model does, whatever the database's collation", () =>
    Effect.gen(function*() {
      const schema = yield* freshPgSchema()
      const readModel = yield* OrderReadModelPg.make({ url: schemaUrl(schema) })
      const ids = ["b", "B", "a-1", "a_1", "a.1", "A", "~", "0"]
      yield* Effect.forEach(
        ids,
        (id) => readModel.save(Order.make({ id: OrderId.make(id), name: id, status: "new", version: 1 }))
      )
      expect((yield* readModel.list({ limit: 100 })).map((order) => order.id)).toEqual([...ids].sort())
      expect((yield* readModel.list({ after: "a-1", limit: 2 })).map((order) => order.id)).toEqual(["a.1", "a_1"])
    }))

  it.scoped("reads DATABASE_URL through Config", () =>
    Effect.gen(function*() {
      const schema = yield* freshPgSchema()
      const context = yield* Layer.build(OrderReadModelPg.layerConfig).pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["DATABASE_URL", schemaUrl(schema)]])))
      )
      const readModel = yield* OrderReadModel.pipe(Effect.provide(context))
      const order = Order.make({ id: OrderId.make("configured"), name: "book", status: "new", version: 1 })
      yield* readModel.save(order)
      expect(yield* query<{ id: string }>(schema, "SELECT id FROM $schema.orders")).toEqual([{ id: "configured" }])
    }))

  it.live(
    "fails to start with a StartupError naming PostgreSQL and the address when nothing listens",
    () =>
      Effect.gen(function*() {
        const port = yield* closedPort
        const result = yield* Effect.either(
          Layer.build(OrderReadModelPg.layer({ url: `postgres://orders:secret@127.0.0.1:${port}/orders` })).pipe(
            Effect.scoped
          )
        )
        expect(Either.isLeft(result) && result.left._tag).toBe("StartupError")
        const message = Either.isLeft(result) ? result.left.message : ""
        expect(message).toContain("PostgreSQL")
        expect(message).toContain(`127.0.0.1:${port}`)
        expect(message).not.toContain("secret")
      }),
    { timeout: 90_000 }
  )
})
