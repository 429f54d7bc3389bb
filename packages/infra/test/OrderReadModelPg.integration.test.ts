import * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { Order } from "@orders/domain/Order"
import { OrderId } from "@orders/domain/Order"
import { OrderReadModel } from "@orders/domain/OrderReadModel"
import { orderReadModelContract } from "@orders/domain/testing/contract/OrderReadModelContract"
import { Cause, ConfigProvider, Context, Effect, Either, Exit, Layer, Option, Redacted } from "effect"
import * as OrderReadModelPg from "../src/OrderReadModelPg.js"
import { freePort, tcpProxy } from "./support/network.js"
import { databaseUrl, freshPgSchema, schemaUrl } from "./support/stack.js"

const readModelAt = (options: OrderReadModelPg.PgOptions) =>
  Layer.build(OrderReadModelPg.layer(options)).pipe(Effect.map(Context.get(OrderReadModel)))

/** The adapter on a fresh schema of its own. */
const freshReadModel = Effect.gen(function*() {
  const schema = yield* freshPgSchema()
  return { schema, readModel: yield* readModelAt({ url: Redacted.make(schemaUrl(schema)) }) }
})

/** A plain SQL client on `schema`, to look at and arrange what the adapter sees. */
const sqlIn = (schema: string) =>
  Layer.build(PgClient.layer({ url: Redacted.make(schemaUrl(schema)) })).pipe(
    Effect.map(Context.get(PgClient.PgClient))
  )

orderReadModelContract(
  "PostgreSQL",
  Layer.unwrapScoped(
    freshPgSchema().pipe(Effect.map((schema) => OrderReadModelPg.layer({ url: Redacted.make(schemaUrl(schema)) })))
  )
)

/** The orders table as migration 1 created it: restated, as the migration itself must never change. */
const createTableOfMigrationOne = (sql: SqlClient.SqlClient) =>
  sql`CREATE TABLE orders (
    id text COLLATE "C" PRIMARY KEY,
    name text NOT NULL,
    status text NOT NULL CHECK (status IN ('new', 'processing', 'processed', 'failed')),
    version integer NOT NULL CHECK (version >= 1),
    failure_reason text,
    updated_at timestamptz NOT NULL DEFAULT now()
  )`

describe("OrderReadModelPg", () => {
  it.scopedLive("fails with ServiceUnavailable while the server is gone, and recovers", () =>
    Effect.gen(function*() {
      const schema = yield* freshPgSchema()
      const proxy = yield* tcpProxy(new URL(databaseUrl), 5432)
      const url = new URL(schemaUrl(schema))
      url.port = String(proxy.port)
      const readModel = yield* readModelAt({ url: Redacted.make(url.toString()) })
      const order = Order.make({ id: OrderId.make("outage"), name: "book", status: "new", version: 1 })
      yield* readModel.save(order)

      // The pool's idle connections die here too: that must not crash the process.
      yield* Effect.promise(() => proxy.stop())
      const results = yield* Effect.all([
        Effect.either(Effect.asVoid(readModel.get(order.id))),
        Effect.either(Effect.asVoid(readModel.list({ limit: 10 }))),
        Effect.either(readModel.save(order))
      ])
      for (const result of results) {
        expect(Either.isLeft(result) && result.left).toMatchObject({
          _tag: "ServiceUnavailable",
          service: "PostgreSQL"
        })
      }

      yield* Effect.promise(() => proxy.start())
      expect(yield* readModel.get(order.id)).toEqual(Option.some(order))
    }), { timeout: 30_000 })

  it.scopedLive(
    "a query that gets no answer in time is ServiceUnavailable, and the next one works",
    () =>
      Effect.gen(function*() {
        const schema = yield* freshPgSchema()
        const readModel = yield* readModelAt({ url: Redacted.make(schemaUrl(schema)), queryTimeout: "300 millis" })
        const order = Order.make({ id: OrderId.make("locked"), name: "book", status: "new", version: 1 })
        yield* readModel.save(order)
        const sql = yield* sqlIn(schema)
        // Another transaction holds the table, so the read waits until its bound. (Not `sql.withTransaction`:
        // the read model's queries would join that transaction, whose connection is found in the fiber's context.)
        const locker = yield* sql.reserve
        yield* locker.executeRaw("BEGIN", [])
        yield* locker.executeRaw("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE", [])
        const whileLocked = yield* Effect.either(readModel.get(order.id))
        yield* locker.executeRaw("COMMIT", [])
        expect(Either.isLeft(whileLocked) && whileLocked.left).toMatchObject({
          _tag: "ServiceUnavailable",
          message: expect.stringContaining("no answer within")
        })
        expect(yield* readModel.get(order.id)).toEqual(Option.some(order))
      }),
    { timeout: 30_000 }
  )

  it.scoped(
    "migrates once when two processes start together, and a later start finds nothing to do",
    () =>
      Effect.gen(function*() {
        const schema = yield* freshPgSchema()
        const url = Redacted.make(schemaUrl(schema))
        yield* Effect.all([readModelAt({ url }), readModelAt({ url })], { concurrency: 2 })
        const sql = yield* sqlIn(schema)
        const history = sql<{ migration_id: number; name: string }>`
        SELECT migration_id, name FROM effect_sql_migrations ORDER BY migration_id`
        expect(yield* history).toEqual([
          { migration_id: 1, name: "create_orders" },
          { migration_id: 2, name: "failure_code" }
        ])
        const tables = yield* sql<{ table_name: string }>`
        SELECT table_name FROM information_schema.tables WHERE table_schema = ${schema} ORDER BY table_name`
        expect(tables.map((row) => row.table_name)).toEqual(["effect_sql_migrations", "orders"])
        yield* readModelAt({ url })
        expect(yield* history).toHaveLength(2)
      }),
    { timeout: 30_000 }
  )

  it.scoped("keeps working on a database migrated before the Migrator", () =>
    Effect.gen(function*() {
      const schema = yield* freshPgSchema()
      const sql = yield* sqlIn(schema)
      // The table and history as the earlier hand-written migrator left them.
      yield* createTableOfMigrationOne(sql)
      yield* sql`CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL)`
      yield* sql`INSERT INTO schema_migrations VALUES (1, now())`
      yield* sql`INSERT INTO orders (id, name, status, version) VALUES ('old', 'book', 'processing', 2)`

      const readModel = yield* readModelAt({ url: Redacted.make(schemaUrl(schema)) })
      expect(yield* readModel.get(OrderId.make("old"))).toEqual(
        Option.some(Order.make({ id: OrderId.make("old"), name: "book", status: "processing", version: 2 }))
      )
    }), { timeout: 30_000 })

  it.scoped(
    "gives the failed orders stored before failure codes the code their events upcast to",
    () =>
      Effect.gen(function*() {
        const schema = yield* freshPgSchema()
        const sql = yield* sqlIn(schema)
        // The table as migration 1 left it, with a failed order an earlier version wrote.
        yield* createTableOfMigrationOne(sql)
        yield* sql`INSERT INTO orders (id, name, status, version, failure_reason)
                 VALUES ('before', 'book', 'failed', 3, 'card declined'), ('fine', 'pen', 'processed', 3, NULL)`

        const readModel = yield* readModelAt({ url: Redacted.make(schemaUrl(schema)) })
        const codes = yield* sql<{ id: string; failure_code: string | null }>`
        SELECT id, failure_code FROM orders ORDER BY id`
        expect(codes).toEqual([{ id: "before", failure_code: "unspecified" }, { id: "fine", failure_code: null }])
        // A projector of the earlier version, still running during the upgrade, writes no code.
        yield* sql`INSERT INTO orders (id, name, status, version, failure_reason)
                 VALUES ('during', 'ink', 'failed', 3, 'out of stock')`
        for (const [id, message] of [["before", "card declined"], ["during", "out of stock"]] as const) {
          expect(Option.map(yield* readModel.get(OrderId.make(id)), (order) => order.failure)).toEqual(
            Option.some({ code: "unspecified", message })
          )
        }
        const fine = yield* readModel.get(OrderId.make("fine"))
        expect(Option.isSome(fine) && fine.value.failure).toBeUndefined()
      }),
    { timeout: 30_000 }
  )

  it.scoped(
    "sorts ids byte-wise, as the in-memory model does, whatever the database's collation",
    () =>
      Effect.gen(function*() {
        const { readModel } = yield* freshReadModel
        const ids = ["b", "B", "a-1", "a_1", "a.1", "A", "~", "0"]
        yield* Effect.forEach(
          ids,
          (id) => readModel.save(Order.make({ id: OrderId.make(id), name: id, status: "new", version: 1 }))
        )
        expect((yield* readModel.list({ limit: 100 })).map((order) => order.id)).toEqual([...ids].sort())
        expect((yield* readModel.list({ after: "a-1", limit: 2 })).map((order) => order.id)).toEqual(["a.1", "a_1"])
      }),
    { timeout: 30_000 }
  )

  it.scoped("stores quotes, backslashes, SQL and astral characters as given", () =>
    Effect.gen(function*() {
      const { readModel } = yield* freshReadModel
      const order = Order.make({
        id: OrderId.make("odd"),
        name: `O'Brien's "book" \\ '); DROP TABLE orders; -- 📦 e\u0301`,
        status: "failed",
        version: 4,
        failure: { code: "odd", message: "$1 \\x00 ${schema} 🚫\ttab" }
      })
      yield* readModel.save(order)
      expect(yield* readModel.get(order.id)).toEqual(Option.some(order))
    }), { timeout: 30_000 })

  it.scoped(
    "reads rows as they are stored, without validating them again, a bad one included",
    () =>
      Effect.gen(function*() {
        const { readModel, schema } = yield* freshReadModel
        const sql = yield* sqlIn(schema)
        // Written by hand: no projector writes an empty name. One bad row must not fail every page it is on.
        yield* sql`INSERT INTO orders (id, name, status, version, failure_reason) VALUES ('bad', '', 'failed', 2, 'x')`
        const expected = {
          id: "bad",
          name: "",
          status: "failed",
          version: 2,
          failure: { code: "unspecified", message: "x" }
        }
        expect(Option.map(yield* readModel.get(OrderId.make("bad")), (order) => ({ ...order }))).toEqual(
          Option.some(expected)
        )
        expect((yield* readModel.list({ limit: 10 })).map((order) => ({ ...order }))).toEqual([expected])
      }),
    { timeout: 30_000 }
  )

  it.scoped(
    "a value PostgreSQL refuses (a NUL) is a defect, not ServiceUnavailable: retrying cannot help",
    () =>
      Effect.gen(function*() {
        const { readModel } = yield* freshReadModel
        const exit = yield* Effect.exit(
          readModel.save(
            Order.make({
              id: OrderId.make("nul"),
              name: "book",
              status: "failed",
              version: 2,
              failure: { code: "nul", message: "a\u0000b" }
            })
          )
        )
        expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
        expect(Exit.isFailure(exit) && Cause.pretty(exit.cause)).toContain("0x00")
      }),
    { timeout: 30_000 }
  )

  it.scoped("reads DATABASE_URL through Config", () =>
    Effect.gen(function*() {
      const schema = yield* freshPgSchema()
      const context = yield* Layer.build(OrderReadModelPg.layerConfig).pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["DATABASE_URL", schemaUrl(schema)]])))
      )
      const readModel = Context.get(context, OrderReadModel)
      yield* readModel.save(Order.make({ id: OrderId.make("configured"), name: "book", status: "new", version: 1 }))
      const sql = yield* sqlIn(schema)
      expect(yield* sql`SELECT id FROM orders`).toEqual([{ id: "configured" }])
    }), { timeout: 30_000 })

  it.live(
    "fails to start with a StartupError naming PostgreSQL and the address when nothing listens",
    () =>
      Effect.gen(function*() {
        const port = yield* Effect.promise(freePort)
        const result = yield* Effect.either(
          Layer.build(
            OrderReadModelPg.layer({ url: Redacted.make(`postgres://orders:secret@127.0.0.1:${port}/orders`) })
          ).pipe(Effect.scoped)
        )
        expect(Either.isLeft(result) && result.left._tag).toBe("StartupError")
        const message = Either.isLeft(result) ? result.left.message : ""
        expect(message).toContain("PostgreSQL")
        expect(message).toContain(`127.0.0.1:${port}`)
        expect(message).toContain("ECONNREFUSED")
        expect(message).not.toContain("secret")
      }),
    { timeout: 90_000 }
  )
})
