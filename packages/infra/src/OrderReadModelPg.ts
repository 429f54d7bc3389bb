/**
 * The read model on PostgreSQL through `@effect/sql-pg`: one row per order,
 * written by the projector with a version guard so that replays and
 * redeliveries change nothing.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { OrderStatus } from "@orders/domain/Order"
import { Order, OrderId, unspecifiedFailureCode } from "@orders/domain/Order"
import { ServiceUnavailable } from "@orders/domain/OrderError"
import type { ListOptions, OrderReadModelShape } from "@orders/domain/OrderReadModel"
import { OrderReadModel } from "@orders/domain/OrderReadModel"
import { traced } from "@orders/domain/Tracing"
import { trusted } from "@orders/domain/Trusted"
import type { ConfigError } from "effect"
import { Array as Arr, Config, Duration, Effect, Exit, Layer, Option, Predicate, Redacted } from "effect"
import Pg from "pg"
import * as GroupCommit from "./GroupCommit.js"
import { redactUrl, StartupError, startupRetry } from "./Startup.js"

export interface PgOptions {
  readonly url: Redacted.Redacted
  /**
   * Client-side bound on one query, for a server that accepts but never
   * answers: 20 seconds unless given for the read model (`layer`); none for
   * a bare `sqlLayer` (the operators' commands) unless given.
   */
  readonly queryTimeout?: Duration.DurationInput
}

const defaultQueryTimeout = Duration.seconds(20)

const SERVICE = "PostgreSQL"

/** The read model's table: queries name it, and `ReadModelRebuild` swaps a rebuilt one in under this name. */
export const ORDERS = "orders"

/** Migration 1: the table, under the name `table`, unless it exists (being a migration, it never changes). */
const createOrdersTable = (table: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`CREATE TABLE IF NOT EXISTS ${sql(table)} (
      id text COLLATE "C" PRIMARY KEY,
      name text NOT NULL,
      status text NOT NULL CHECK (status IN ('new', 'processing', 'processed', 'failed')),
      version integer NOT NULL CHECK (version >= 1),
      failure_reason text,
      updated_at timestamptz NOT NULL DEFAULT now()
    )`)

/**
 * Migration 2: the failure's code beside its message (`failure_reason`).
 * Failed rows written before then came from events without codes, whose
 * upcast gives `unspecified`: they get that code, as a rebuild would.
 */
const addFailureCode = (table: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.zipRight(
      sql`ALTER TABLE ${sql(table)} ADD COLUMN failure_code text`,
      sql`UPDATE ${sql(table)} SET failure_code = ${unspecifiedFailureCode}
          WHERE status = 'failed' AND failure_code IS NULL`
    ))

/**
 * The table as all the migrations leave it, under the name `table`: how
 * `ReadModelRebuild` recreates a dropped `orders`. A migration that alters
 * the table is added here too.
 */
export const createMigratedOrdersTable = (table: string) =>
  Effect.zipRight(createOrdersTable(table), addFailureCode(table))

/** Append only: an applied migration is never edited, a change is a new entry (and goes into the function above). */
const migrations = Migrator.fromRecord({
  // IF NOT EXISTS: databases migrated before the Migrator (history in `schema_migrations`) already have the table.
  "1_create_orders": createOrdersTable(ORDERS),
  "2_failure_code": addFailureCode(ORDERS)
})

/**
 * `PgMigrator.run` is this Migrator plus `pg_dump` support, which would need a
 * FileSystem and a CommandExecutor for nothing. It takes `LOCK TABLE` on its
 * history table, so processes starting together apply each migration once.
 */
const migrate = Migrator.make({})({ loader: migrations })

/**
 * "Not now" rather than "never": SQLSTATE classes 08 (connection), 40
 * (serialization, deadlock), 53 (too many connections), 57 (shutdown,
 * statement timeout), 25006 (read-only, after a failover); Node's socket
 * errors; and node-postgres's own errors for a lost or slow connection, which
 * carry no code.
 */
const TRANSIENT_CODE = /^(?:08|40|53|57)|^25006$|^E[A-Z_]+$/
const TRANSIENT_MESSAGE = /terminated|timeout|timed out|not queryable/i

/** node-postgres's message when a query outlives the pool's `query_timeout`. */
const QUERY_TIMED_OUT = "Query read timeout"

const isTransient = (cause: unknown): boolean =>
  cause instanceof Error &&
  (Predicate.hasProperty(cause, "code") && Predicate.isString(cause.code)
    ? TRANSIENT_CODE.test(cause.code)
    : TRANSIENT_MESSAGE.test(cause.message))

/** A failure the caller can act on is `ServiceUnavailable`; a bad query is a defect. */
const orUnavailable = (operation: string, queryTimeout: Duration.Duration) =>
<A>(
  query: Effect.Effect<A, SqlError>
): Effect.Effect<A, ServiceUnavailable> =>
  Effect.catchTag(query, "SqlError", ({ cause }) => {
    const message = cause instanceof Error ? cause.message : String(cause)
    const reason = `${operation}: ${
      message === QUERY_TIMED_OUT ? `no answer within ${Duration.format(queryTimeout)}` : message
    }`
    return isTransient(cause)
      ? Effect.fail(new ServiceUnavailable({ service: SERVICE, message: reason }))
      : Effect.dieMessage(`read model ${reason}`)
  })

/** An order as a row of the table (a type, not an interface: the SQL helpers take records). */
export type OrderRow = {
  readonly id: string
  readonly name: string
  readonly status: OrderStatus
  readonly version: number
  /** The failure's message, NULL unless the order failed. */
  readonly failure_reason: string | null
  readonly failure_code: string | null
}

export const toRow = (order: typeof Order.Encoded): OrderRow => ({
  id: order.id,
  name: order.name,
  status: order.status,
  version: order.version,
  failure_reason: order.failure?.message ?? null,
  failure_code: order.failure?.code ?? null
})

/**
 * A row of `orders` as the domain's Order, not validated again: only the
 * projector and the rebuild write the table, from Orders validated with the
 * events they came from, and its constraints hold the status and the version
 * (`pnpm check:consistency` compares every row with the event store).
 * Through the Order schema, a page of 1,000 rows took 4.7 ms of CPU to
 * decode; so, 0.5 ms. A failed row without a code was written by a projector
 * older than codes, still running during an upgrade (migration 2 gave the
 * rows before it theirs): its failure came from an event without a code,
 * hence `unspecified`, as the event's upcast says.
 */
const orderFromRow = ({ failure_code, failure_reason, id, ...order }: OrderRow): Order =>
  Order.make(
    {
      id: OrderId.make(id, trusted),
      ...order,
      ...(failure_reason === null
        ? {}
        : { failure: { code: failure_code ?? unspecifiedFailureCode, message: failure_reason } })
    },
    trusted
  )

/**
 * What an upsert takes from the newer row, every column but `id` and
 * `updated_at`: one list for every upsert of an order row, so that a new
 * column cannot be forgotten in one of them.
 */
export const takeNewerRow = (sql: SqlClient.SqlClient) =>
  sql`name = EXCLUDED.name, status = EXCLUDED.status, version = EXCLUDED.version,
      failure_reason = EXCLUDED.failure_reason, failure_code = EXCLUDED.failure_code`

/**
 * Inserts the rows into `table`, or moves existing ones forward: a row already
 * at a later version stays as it is, and one at the same version too (so that
 * replays change nothing) unless `overwriteSameVersion` (for rows folded from
 * the event store, which know better). At most one row per id.
 */
export const saveRows = (
  sql: SqlClient.SqlClient,
  table: string,
  rows: ReadonlyArray<OrderRow>,
  options: { readonly overwriteSameVersion?: boolean } = {}
) =>
  sql`INSERT INTO ${sql(table)} ${sql.insert(rows)}
        ON CONFLICT (id) DO UPDATE SET ${takeNewerRow(sql)}, updated_at = now()
        WHERE ${sql(table)}.version ${sql.literal(options.overwriteSameVersion === true ? "<=" : "<")} EXCLUDED.version`

const make = (queryTimeout: Duration.Duration) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    /*
     * Plain (unnamed) statements, parsed at each call: when `ReadModelRebuild`
     * renames a rebuilt table to `orders`, the next query reads the new table.
     */
    const selectOrders = sql`SELECT id, name, status, version, failure_reason, failure_code FROM ${sql(ORDERS)}`

    const findByIds = (ids: ReadonlyArray<string>) =>
      Effect.map(sql<OrderRow>`${selectOrders} WHERE id = ANY(${ids})`, Arr.map(orderFromRow))

    /*
     * Concurrent reads share one query, as the saves share one statement: a
     * read waits at most for the query in flight, and its own starts after it
     * was asked for, so that it sees every write answered before.
     */
    const lookup = yield* GroupCommit.make({
      write: (ids: Arr.NonEmptyReadonlyArray<OrderId>) =>
        findByIds(Arr.dedupe(ids)).pipe(
          orUnavailable("get", queryTimeout),
          Effect.exit,
          Effect.map((outcome) => {
            if (Exit.isFailure(outcome)) return ids.map(() => Exit.failCause(outcome.cause))
            const found = new Map(outcome.value.map((order) => [order.id, order]))
            return ids.map((id) => Exit.succeed(Option.fromNullable(found.get(id))))
          })
        ),
      closed: new ServiceUnavailable({ service: SERVICE, message: "get: the read model is closing" }),
      maxBatch: 128,
      concurrency: 1
    })

    // Every id is non-empty, so '' sorts before all of them under COLLATE "C".
    const findPage = ({ after, limit }: { readonly after: string; readonly limit: number }) =>
      Effect.map(sql<OrderRow>`${selectOrders} WHERE id > ${after} ORDER BY id LIMIT ${limit}`, Arr.map(orderFromRow))

    /*
     * The projector's concurrent saves share one statement: at most one row per
     * id (the latest version asked for), in id order, so that two projectors
     * writing overlapping batches take their row locks in the same order.
     */
    const upsert = yield* GroupCommit.make({
      write: (orders: Arr.NonEmptyReadonlyArray<Order>) => {
        const latest = new Map<string, Order>()
        for (const order of orders) {
          if ((latest.get(order.id)?.version ?? 0) < order.version) latest.set(order.id, order)
        }
        const rows = [...latest.values()].sort((a, b) => (a.id < b.id ? -1 : 1)).map(toRow)
        return saveRows(sql, ORDERS, rows).pipe(
          orUnavailable("save", queryTimeout),
          Effect.exit,
          Effect.map((outcome) => orders.map(() => Exit.asVoid(outcome)))
        )
      },
      closed: new ServiceUnavailable({ service: SERVICE, message: "save: the read model is closing" }),
      maxBatch: 128,
      concurrency: 1
    })

    return {
      get: (id: OrderId) => lookup(id).pipe(traced("OrderReadModelPg.get")),
      list: ({ after, limit }: ListOptions) =>
        findPage({ after: after ?? "", limit: Math.max(0, Math.floor(limit)) }).pipe(
          orUnavailable("list", queryTimeout),
          traced("OrderReadModelPg.list")
        ),
      save: (order: Order) => upsert(order).pipe(traced("OrderReadModelPg.save"))
    } satisfies OrderReadModelShape
  })

/**
 * The pool of 10, built here rather than by `PgClient.layer`, which cannot set
 * node-postgres's `query_timeout`: the driver's own timer bounds each query at
 * no cost, where `Effect.timeout` forked fibers per query, half the CPU of a
 * read-model `get`. Without `queryTimeout` (the operators' commands, whose
 * queries may take long), queries are unbounded.
 */
const poolLayer = (options: PgOptions) =>
  PgClient.layerFromPool({
    acquire: Effect.acquireRelease(
      Effect.sync(() => {
        const pool = new Pg.Pool({
          connectionString: Redacted.value(options.url),
          application_name: "orders",
          max: 10,
          // A stopped server fails a request within seconds instead of queueing it.
          connectionTimeoutMillis: 5_000,
          idleTimeoutMillis: 30_000,
          ...(options.queryTimeout === undefined
            ? {}
            : { query_timeout: Duration.toMillis(Duration.decode(options.queryTimeout)) })
        })
        // An idle connection that broke: the pool drops it, and the next query opens another.
        pool.on("error", () => {})
        return pool
      }),
      (pool) => Effect.promise(() => pool.end()).pipe(Effect.timeoutOption(Duration.seconds(1)))
    ),
    applicationName: "orders"
  })

/**
 * A pool on the given database, migrated: the read model's, and the operator
 * commands'. The migration's first query checks the connection; connecting
 * and migrating are retried together, which also settles
 * two processes creating the Migrator's history table at once. The pool lives
 * as long as the layer.
 */
export const sqlLayer = (options: PgOptions): Layer.Layer<SqlClient.SqlClient, StartupError> =>
  Layer.effectDiscard(
    migrate.pipe(
      // A MigrationError (duplicate ids, a failing migration) is a bug in this file.
      Effect.catchTag("MigrationError", Effect.die),
      Effect.tap((applied) =>
        applied.length > 0
          ? Effect.logInfo(`${SERVICE} migrations applied: ${applied.map(([id, name]) => `${id}_${name}`).join(", ")}`)
          : Effect.void
      )
    )
  ).pipe(
    Layer.provideMerge(poolLayer(options)),
    Layer.tapError((error) => Effect.logDebug(`${SERVICE} start-up attempt failed`, error.cause)),
    Layer.retry(startupRetry),
    Layer.mapError((error) =>
      new StartupError({ service: SERVICE, address: redactUrl(Redacted.value(options.url)), cause: error.cause })
    )
  )

/** The read model on the given database, migrated at start-up; each query bounded by `queryTimeout`. */
export const layer = (options: PgOptions): Layer.Layer<OrderReadModel, StartupError> => {
  const queryTimeout = Duration.decode(options.queryTimeout ?? defaultQueryTimeout)
  return Layer.scoped(OrderReadModel, make(queryTimeout)).pipe(Layer.provide(sqlLayer({ ...options, queryTimeout })))
}

/**
 * `DATABASE_URL`, default `postgres://orders:orders@127.0.0.1:5432/orders`.
 * Read here rather than by `PgClient.layerConfig`, so that a start-up failure
 * can name the address (password hidden).
 */
export const urlConfig: Config.Config<Redacted.Redacted> = Config.redacted("DATABASE_URL").pipe(
  Config.withDefault(Redacted.make("postgres://orders:orders@127.0.0.1:5432/orders"))
)

export const layerConfig: Layer.Layer<OrderReadModel, StartupError | ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(urlConfig, (url) => layer({ url }))
)

/** `sqlLayer` on `DATABASE_URL`. */
export const sqlLayerConfig: Layer.Layer<SqlClient.SqlClient, StartupError | ConfigError.ConfigError> = Layer
  .unwrapEffect(Effect.map(urlConfig, (url) => sqlLayer({ url })))
