/**
 * `pnpm rebuild:read-model`: rebuilds the read model from the event store
 * while the system runs, blue/green.
 *
 * 1. Set-up, in one transaction: `orders_rebuild`, shaped like `orders`; a
 *    table of pending ids; a trigger on `orders` that records there the id of
 *    every row the projector writes (or tries to: a BEFORE trigger also sees
 *    the writes the version guard then ignores).
 * 2. Fill: every stream of the store, in `_id` order, folded and written to
 *    `orders_rebuild` a batch of orders per transaction, with the last stream
 *    written: a rebuild killed half-way resumes after it.
 * 3. Switch, in one transaction that holds `orders` exclusively: rows that the
 *    projector changed during the fill are carried over from `orders` when
 *    newer, so that no query sees an order go back; the trigger goes; the
 *    rebuilt table takes the name `orders`, the old one is dropped. Queries
 *    wait for the switch (milliseconds) and never see a partial table.
 * 4. Catch-up: the pending orders are folded again from the store, the source
 *    of truth, and replace their rows at the same version too: a row that the
 *    projector derived from a wrong one is corrected.
 *
 * What the projector writes during the fill is thus never lost, and what the
 * new table holds comes from the store only. A rerun after a kill takes up
 * where the last one stopped: in the fill after the last batch written, after
 * the switch with the catch-up. One rebuild at a time per schema (an advisory
 * lock, released if the process dies).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { projectAll } from "@orders/domain/Projection"
import { Array as Arr, Chunk, Clock, Data, Duration, Effect, Option, Schedule, Stream } from "effect"
import { EventStoreScan } from "./EventStoreScan.js"
import { createMigratedOrdersTable, ORDERS, saveRows, takeNewerRow, toRow } from "./OrderReadModelPg.js"

const REBUILD = "orders_rebuild"
const PENDING = "orders_rebuild_pending"
const STATE = "orders_rebuild_state"
const PREVIOUS = "orders_previous"
/** The trigger and its function. */
const RECORD = "orders_rebuild_record"

export interface RebuildOptions {
  /** Orders written per transaction. Default 1,000. */
  readonly batch?: number
  /** Told how the fill goes, at most once per `progressInterval`, and once at its end. */
  readonly onProgress?: (progress: FillProgress) => Effect.Effect<void>
  /** Default 5 seconds. */
  readonly progressInterval?: Duration.DurationInput
}

export interface FillProgress {
  /** Orders and events written by this run. */
  readonly orders: number
  readonly events: number
  readonly elapsed: Duration.Duration
  readonly eventsPerSecond: number
}

export interface RebuildSummary extends FillProgress {
  /** This run finished the rebuild of one that stopped half-way. */
  readonly resumed: boolean
  /** Orders the projector changed during the fill, folded again from the store after the switch. */
  readonly caughtUp: number
  /** Streams whose chain of commits is broken: rebuilt from what the store's `read` returns. */
  readonly brokenStreams: number
}

/** Another rebuild of the same schema holds the lock. */
export class RebuildInProgress extends Data.TaggedError("RebuildInProgress")<{}> {
  override get message() {
    return "another rebuild of this read model is running"
  }
}

const exists = (sql: SqlClient.SqlClient, table: string) =>
  sql<{ found: string | null }>`SELECT to_regclass(${table}) AS found`.pipe(
    Effect.map((rows) => rows[0]?.found != null)
  )

/** Held for the whole rebuild on a connection of its own; the server releases it if the process dies. */
const exclusively = (sql: SqlClient.SqlClient) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const connection = yield* sql.reserve
      const key = `current_schema() || '.${REBUILD}'`
      const [row] = yield* connection.execute(`SELECT pg_try_advisory_lock(hashtext(${key})) AS locked`, [], undefined)
      if (row?.locked !== true) return yield* new RebuildInProgress()
      return { connection, key }
    }),
    ({ connection, key }) =>
      connection.execute(`SELECT pg_advisory_unlock(hashtext(${key}))`, [], undefined).pipe(
        Effect.timeout(Duration.seconds(5)),
        Effect.ignore
      )
  )

const setUp = (sql: SqlClient.SqlClient) =>
  Effect.gen(function*() {
    const live = yield* exists(sql, ORDERS)
    // A dropped `orders` is rebuilt from the table's definition.
    yield* live
      ? sql`CREATE TABLE ${sql(REBUILD)} (LIKE ${sql(ORDERS)} INCLUDING ALL)`
      : createMigratedOrdersTable(REBUILD)
    yield* sql`CREATE TABLE ${sql(PENDING)} (id text COLLATE "C" PRIMARY KEY)`
    yield* sql`CREATE TABLE ${sql(STATE)} (fill_after text)`
    yield* sql`INSERT INTO ${sql(STATE)} VALUES (NULL)`
    // The search path of this session, so that the projector's sessions find the pending table where it is.
    yield* sql.unsafe(`CREATE FUNCTION ${RECORD}() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
      BEGIN
        INSERT INTO ${PENDING} (id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
        RETURN NEW;
      END $$`)
    if (live) {
      yield* sql`CREATE TRIGGER ${sql(RECORD)} BEFORE INSERT OR UPDATE ON ${sql(ORDERS)}
                 FOR EACH ROW EXECUTE FUNCTION ${sql(RECORD)}()`
    }
  }).pipe(sql.withTransaction)

/** Fills `orders_rebuild` from the stream after `after` on, recording the last stream of each batch. */
const fill = (
  sql: SqlClient.SqlClient,
  store: EventStoreScan,
  after: string | undefined,
  options: Required<RebuildOptions>
) =>
  Effect.gen(function*() {
    const started = yield* Clock.currentTimeMillis
    let orders = 0
    let events = 0
    let brokenStreams = 0
    let reported = started
    const progress = Effect.map(Clock.currentTimeMillis, (now): FillProgress => {
      const elapsed = Duration.millis(now - started)
      return { orders, events, elapsed, eventsPerSecond: Math.round(events / Math.max(0.001, (now - started) / 1000)) }
    })
    const interval = Duration.toMillis(options.progressInterval)
    yield* store.streams(after).pipe(
      Stream.grouped(options.batch),
      Stream.runForEach((chunk) =>
        Effect.gen(function*() {
          const histories = Chunk.toReadonlyArray(chunk)
          const rows = histories.flatMap((history) => {
            const order = projectAll(undefined, history.events)
            return order === undefined ? [] : [toRow(order)]
          })
          yield* Effect.gen(function*() {
            if (rows.length > 0) yield* saveRows(sql, REBUILD, rows)
            yield* sql`UPDATE ${sql(STATE)} SET fill_after = ${histories.at(-1)!.streamId}`
          }).pipe(sql.withTransaction)
          orders += rows.length
          events += histories.reduce((sum, history) => sum + history.events.length, 0)
          brokenStreams += histories.filter((history) => history.anomalies.length > 0).length
          const now = yield* Clock.currentTimeMillis
          if (now - reported >= interval) {
            reported = now
            yield* options.onProgress(yield* progress)
          }
        })
      )
    )
    const done = yield* progress
    yield* options.onProgress(done)
    return { ...done, brokenStreams }
  })

const lockTimeout = (error: SqlError) =>
  typeof error.cause === "object" && error.cause !== null && "code" in error.cause && error.cause.code === "55P03"

/**
 * The rebuilt table replaces `orders` in one transaction. It waits at most a
 * few seconds for the lock, then lets go and tries again: a lock request that
 * waits holds up every query behind it.
 */
const switchTables = (sql: SqlClient.SqlClient) =>
  Effect.gen(function*() {
    yield* sql`SET LOCAL lock_timeout = '3s'`
    if (yield* exists(sql, ORDERS)) {
      yield* sql`LOCK TABLE ${sql(ORDERS)} IN ACCESS EXCLUSIVE MODE`
      yield* sql`INSERT INTO ${sql(REBUILD)} (id, name, status, version, failure_reason, failure_code, updated_at)
                 SELECT o.id, o.name, o.status, o.version, o.failure_reason, o.failure_code, o.updated_at
                 FROM ${sql(ORDERS)} o JOIN ${sql(PENDING)} p ON p.id = o.id
                 ON CONFLICT (id) DO UPDATE SET ${takeNewerRow(sql)}, updated_at = EXCLUDED.updated_at
                 WHERE ${sql(REBUILD)}.version < EXCLUDED.version`
      yield* sql`DROP TRIGGER IF EXISTS ${sql(RECORD)} ON ${sql(ORDERS)}`
      yield* sql`ALTER TABLE ${sql(ORDERS)} RENAME TO ${sql(PREVIOUS)}`
      yield* sql`DROP TABLE ${sql(PREVIOUS)}`
    }
    yield* sql`ALTER TABLE ${sql(REBUILD)} RENAME TO ${sql(ORDERS)}`
    yield* sql`ALTER INDEX IF EXISTS ${sql(`${REBUILD}_pkey`)} RENAME TO ${sql(`${ORDERS}_pkey`)}`
  }).pipe(
    sql.withTransaction,
    Effect.tapError((error) =>
      lockTimeout(error) ? Effect.logWarning("orders is busy; trying the switch again") : Effect.void
    ),
    Effect.retry({ while: lockTimeout, schedule: Schedule.spaced(Duration.seconds(1)).pipe(Schedule.upTo("1 minute")) })
  )

/** Folds the pending orders again from the store into `orders`, a bounded batch at a time; how many. */
const catchUp = (sql: SqlClient.SqlClient, store: EventStoreScan, batch: number) =>
  Effect.gen(function*() {
    let caughtUp = 0
    while (true) {
      const ids = (yield* sql<{ id: string }>`SELECT id FROM ${sql(PENDING)} ORDER BY id LIMIT ${batch}`)
        .map((row) => row.id)
      if (!Arr.isNonEmptyReadonlyArray(ids)) return caughtUp
      const histories = yield* Stream.runCollect(store.streamsOf(ids))
      const rows = Chunk.toReadonlyArray(histories).flatMap((history) =>
        Option.toArray(Option.fromNullable(projectAll(undefined, history.events))).map(toRow)
      )
      // Rows written during the fill for orders the store does not have (not by the projector, then) go.
      const orphans = Arr.difference(ids, rows.map((row) => row.id))
      yield* Effect.gen(function*() {
        if (rows.length > 0) yield* saveRows(sql, ORDERS, rows, { overwriteSameVersion: true })
        if (orphans.length > 0) yield* sql`DELETE FROM ${sql(ORDERS)} WHERE id IN ${sql.in(orphans)}`
        yield* sql`DELETE FROM ${sql(PENDING)} WHERE id IN ${sql.in(ids)}`
      }).pipe(sql.withTransaction)
      caughtUp += ids.length
    }
  })

const cleanUp = (sql: SqlClient.SqlClient) =>
  Effect.gen(function*() {
    yield* sql`DROP TABLE ${sql(PENDING)}`
    yield* sql`DROP TABLE ${sql(STATE)}`
    yield* sql`DROP FUNCTION ${sql(RECORD)}()`
  }).pipe(sql.withTransaction)

/** Rebuilds the read model, or finishes the rebuild that a stopped run left. */
export const rebuild = Effect.fn("ReadModelRebuild.rebuild")(function*(options: RebuildOptions = {}) {
  const settings: Required<RebuildOptions> = {
    batch: 1_000,
    onProgress: () => Effect.void,
    progressInterval: Duration.seconds(5),
    ...options
  }
  const sql = yield* SqlClient.SqlClient
  const store = yield* EventStoreScan
  yield* exclusively(sql)
  const started = yield* exists(sql, STATE)
  const filling = yield* exists(sql, REBUILD)
  let filled: FillProgress & { readonly brokenStreams: number } = {
    orders: 0,
    events: 0,
    elapsed: Duration.zero,
    eventsPerSecond: 0,
    brokenStreams: 0
  }
  if (!started) yield* setUp(sql)
  if (!started || filling) {
    const [state] = yield* sql<{ fill_after: string | null }>`SELECT fill_after FROM ${sql(STATE)}`
    filled = yield* fill(sql, store, state?.fill_after ?? undefined, settings)
    yield* switchTables(sql)
  }
  const caughtUp = yield* catchUp(sql, store, settings.batch)
  yield* cleanUp(sql)
  return { ...filled, resumed: started, caughtUp } satisfies RebuildSummary
}, (effect) => effect.pipe(Effect.catchTag("SqlError", Effect.die), Effect.scoped))

const integer = (n: number) => n.toLocaleString("en-US")

/** One line of progress, as the command prints it. */
export const formatProgress = (progress: FillProgress) =>
  `filled ${integer(progress.orders)} orders, ${integer(progress.events)} events in ${
    Duration.format(progress.elapsed)
  }: ${integer(progress.eventsPerSecond)} events/s`

/** The command's last line. */
export const formatSummary = (summary: RebuildSummary) =>
  [
    `rebuilt the read model${summary.resumed ? " (resumed)" : ""}: ${formatProgress(summary)}`,
    `; ${integer(summary.caughtUp)} orders changed meanwhile caught up from the event store`,
    summary.brokenStreams > 0
      ? `; ${integer(summary.brokenStreams)} streams with broken commit chains (see check:consistency)`
      : ""
  ].join("")
