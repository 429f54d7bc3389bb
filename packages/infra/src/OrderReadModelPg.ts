/**
 * The read model on PostgreSQL: one row per order, written by the projector
 * with a version guard so that replays and redeliveries change nothing.
 */
import { Order } from "@orders/domain/Order"
import { ServiceUnavailable } from "@orders/domain/OrderError"
import type { OrderId } from "@orders/domain/OrderEvent"
import type { ListOptions, OrderReadModelShape } from "@orders/domain/OrderReadModel"
import { OrderReadModel } from "@orders/domain/OrderReadModel"
import type { ConfigError } from "effect"
import { Config, Effect, Layer, Option, ParseResult, Redacted, Runtime, Schema } from "effect"
import type { PoolClient, QueryResultRow } from "pg"
import pg from "pg"
import { connectWithRetry, redactUrl, StartupError } from "./Startup.js"

export interface PgOptions {
  readonly url: string
}

const SERVICE = "PostgreSQL"

/**
 * Schema changes, in order; migration n is `migrations[n - 1]`. Append only:
 * an applied migration is never edited, a change is a new entry.
 */
export const migrations: ReadonlyArray<string> = [
  `CREATE TABLE orders (
    id text COLLATE "C" PRIMARY KEY,
    name text NOT NULL,
    status text NOT NULL CHECK (status IN ('new', 'processing', 'processed', 'failed')),
    version integer NOT NULL CHECK (version >= 1),
    failure_reason text,
    updated_at timestamptz NOT NULL DEFAULT now()
  )`
]

/** Any constant shared by every process that migrates this database; it only has to avoid other advisory-lock users. */
const MIGRATION_LOCK = 4_242_001

/**
 * SQLSTATE classes that mean "not now" rather than "never": connection
 * exceptions, insufficient resources, operator intervention (shutdown,
 * statement timeout) and transaction rollbacks (serialization, deadlock).
 */
const TRANSIENT_SQLSTATE_CLASSES: ReadonlySet<string> = new Set(["08", "40", "53", "57"])
const NETWORK_ERROR_CODES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH"
])
// node-postgres reports a lost or timed-out connection with a plain Error and one of these messages.
const NETWORK_ERROR_MESSAGE =
  /connection terminated|timeout exceeded when trying to connect|query read timeout|not queryable|connection ended/i

const isUnavailable = (error: unknown): error is Error => {
  if (error instanceof pg.DatabaseError) return TRANSIENT_SQLSTATE_CLASSES.has((error.code ?? "").slice(0, 2))
  if (!(error instanceof Error)) return false
  const code = (error as NodeJS.ErrnoException).code
  return (code !== undefined && NETWORK_ERROR_CODES.has(code)) || NETWORK_ERROR_MESSAGE.test(error.message)
}

/** Runs one query: an unreachable or overloaded server is `ServiceUnavailable`, anything else (bad SQL, a violated constraint) a defect. */
const attempt = <A>(operation: string, run: () => Promise<A>): Effect.Effect<A, ServiceUnavailable> =>
  Effect.tryPromise({ try: run, catch: (error) => error }).pipe(
    Effect.catchAll((error) =>
      isUnavailable(error)
        ? Effect.fail(new ServiceUnavailable({ service: SERVICE, message: `${operation}: ${error.message}` }))
        : Effect.die(error)
    )
  )

interface OrderRow extends QueryResultRow {
  readonly id: string
  readonly name: string
  readonly status: string
  readonly version: number
  readonly failure_reason: string | null
}

const decodeOrder = Schema.decodeUnknown(Order)

/** A row the schema's constraints let through but the domain rejects is a corrupt read model: a defect. */
const toOrder = (row: OrderRow): Effect.Effect<Order> =>
  decodeOrder({
    id: row.id,
    name: row.name,
    status: row.status,
    version: row.version,
    ...(row.failure_reason === null ? {} : { failureReason: row.failure_reason })
  }).pipe(
    Effect.catchAll((error) =>
      Effect.dieMessage(
        `read model corrupt: order '${row.id}' does not decode: ${ParseResult.TreeFormatter.formatErrorSync(error)}`
      )
    )
  )

const COLUMNS = "id, name, status, version, failure_reason"

/**
 * Applies the migrations this database lacks, in one transaction under an
 * advisory lock: processes starting together queue on the lock, and the later
 * ones find the work done.
 */
const migrate = async (client: PoolClient): Promise<ReadonlyArray<number>> => {
  await client.query("BEGIN")
  try {
    await client.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK])
    await client.query(
      `CREATE TABLE IF NOT EXISTS schema_migrations (
        version integer PRIMARY KEY,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`
    )
    const { rows } = await client.query<{ version: number }>("SELECT version FROM schema_migrations")
    const done = new Set(rows.map((row) => row.version))
    const applied: Array<number> = []
    for (const [i, sql] of migrations.entries()) {
      const version = i + 1
      if (done.has(version)) continue
      await client.query(sql)
      await client.query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, now())", [version])
      applied.push(version)
    }
    await client.query("COMMIT")
    return applied
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined)
    throw error
  }
}

const connect = (options: PgOptions) =>
  Effect.gen(function*() {
    const address = redactUrl(options.url)
    const runtime = yield* Effect.runtime<never>()
    const pool = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const pool = new pg.Pool({
          connectionString: options.url,
          application_name: "orders",
          max: 10,
          // A stopped server fails a request within seconds instead of queueing it.
          connectionTimeoutMillis: 5_000,
          // Client-side bound for a server that accepts but never answers.
          query_timeout: 20_000,
          idleTimeoutMillis: 30_000
        })
        // An idle client whose connection dies emits "error" on the pool; unhandled, Node would crash the process.
        pool.on("error", (error) =>
          Runtime.runFork(runtime)(Effect.logWarning(`${SERVICE} idle connection lost: ${error.message}`)))
        return pool
      }),
      (pool) =>
        Effect.promise(() => pool.end())
    )
    yield* connectWithRetry(SERVICE, address, async () => (await pool.connect()).release())
    const applied = yield* attempt("migrate", async () => {
      const client = await pool.connect()
      try {
        return await migrate(client)
      } finally {
        client.release()
      }
    }).pipe(Effect.mapError((cause) => new StartupError({ service: SERVICE, address, cause })))
    if (applied.length > 0) yield* Effect.logInfo(`${SERVICE} migrations applied: ${applied.join(", ")}`)
    return pool
  })

/** The read model on the given PostgreSQL database, migrated at start-up; the pool lives as long as the scope. */
export const make = (options: PgOptions) =>
  Effect.gen(function*() {
    const pool = yield* connect(options)

    const get = Effect.fn("OrderReadModelPg.get")(function*(id: OrderId) {
      const { rows } = yield* attempt("get", () =>
        pool.query<OrderRow>(`SELECT ${COLUMNS} FROM orders WHERE id = $1`, [id]))
      const row = rows[0]
      return row === undefined ? Option.none() : Option.some(yield* toOrder(row))
    })

    const list = Effect.fn("OrderReadModelPg.list")(function*({ after, limit }: ListOptions) {
      // Every id is non-empty, so '' sorts before all of them under COLLATE "C".
      const { rows } = yield* attempt("list", () =>
        pool.query<OrderRow>(`SELECT ${COLUMNS} FROM orders WHERE id > $1 ORDER BY id LIMIT $2`, [
          after ?? "",
          Math.max(0, Math.floor(limit))
        ]))
      return yield* Effect.forEach(rows, toOrder)
    })

    const save = Effect.fn("OrderReadModelPg.save")(function*(order: Order) {
      yield* attempt("save", () =>
        pool.query(
          `INSERT INTO orders (id, name, status, version, failure_reason, updated_at)
           VALUES ($1, $2, $3, $4, $5, now())
           ON CONFLICT (id) DO UPDATE SET
             name = EXCLUDED.name,
             status = EXCLUDED.status,
             version = EXCLUDED.version,
             failure_reason = EXCLUDED.failure_reason,
             updated_at = EXCLUDED.updated_at
           WHERE orders.version < EXCLUDED.version`,
          [order.id, order.name, order.status, order.version, order.failureReason ?? null]
        ))
    })

    return { get, list, save } satisfies OrderReadModelShape
  })

export const layer = (options: PgOptions): Layer.Layer<OrderReadModel, StartupError> =>
  Layer.scoped(OrderReadModel, make(options))

/** `DATABASE_URL`, default `postgres://orders:orders@127.0.0.1:5432/orders`. */
export const layerConfig: Layer.Layer<OrderReadModel, StartupError | ConfigError.ConfigError> = Layer.unwrapEffect(
  Config.redacted("DATABASE_URL").pipe(
    Config.withDefault(Redacted.make("postgres://orders:orders@127.0.0.1:5432/orders")),
    Effect.map((url) => layer({ url: Redacted.value(url) }))
  )
)
