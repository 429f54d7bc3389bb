/**
 * The event store on MongoDB (or FerretDB).
 *
 * Each append is ONE immutable document, a commit, holding all of its encoded
 * events: a single-document insert is atomic without transactions. The
 * commit's `_id` is `<streamId>:<expectedVersion>`, so at most one commit can
 * ever follow a given version, and the server's unique `_id` decides between
 * concurrent writers. A stream is read by following its commits from `:0`,
 * each the `_id` of the next one: every hot query is a lookup by `_id`.
 *
 * The outbox is a second collection: a marker per commit `_id` not yet
 * published, inserted before the commit, so that no commit is ever unmarked.
 * A marker says nothing about the commit's content: it covers whichever
 * commit lands at its `_id`. So a writer that finds a marker there already
 * (a rival's, or the orphan of a writer that died between its two inserts)
 * goes on and lets the commit `_id` decide: no append ever waits for a marker
 * to go, and a loser never deletes one. Markers are deleted only by
 * `markPublished`, once the commit they cover reached the bus.
 *
 * The relay takes the markers whose `due` time has come, soonest first, a
 * bounded batch at a time. `due` is the writer's clock plus a grace, which
 * leaves a fresh commit to the writer publishing it; a marker found without
 * its commit is put off (a minute, doubling), so that orphans never fill the
 * head of the queue, and brought forward again by the next writer at its
 * `_id`. Clocks thus decide when a marker is looked at, never whether its
 * commit is published.
 *
 * An append is uninterruptible once started. When the commit insert's answer
 * is lost (connection dropped, timeout), the write may have landed: the
 * append inserts again, within a time limit, and the `_id` tells whose commit
 * is there: ours (same event ids) is success, another writer's a conflict;
 * no answer at all is `AppendOutcomeUnknown`, never `ServiceUnavailable`.
 *
 * Why this shape: FerretDB 1.x runs an update as query, then in-memory change,
 * then replace, so concurrent version-guarded updates all win (measured: 18 of
 * 20 races had several winners); inserts against a unique key are the one
 * conditional write both servers make atomic (the outbox's updates only move
 * `due`, where a lost update costs a delay, not an event). And FerretDB 1.x
 * uses no index to answer a query: a filter on `_id` becomes a scan in its
 * backend (SQLite or PostgreSQL), any other filter a scan in FerretDB itself,
 * ten times slower (0.2 ms a document here). So the hot path asks only for `_id`s, and the relay polls
 * the small collection with sorted, limited queries (indexed on a real MongoDB).
 */
import type { EventStoreShape } from "@orders/domain/EventStore"
import { assertContiguous, defaultGrace, EventStore } from "@orders/domain/EventStore"
import type { OrderId } from "@orders/domain/Order"
import { AppendOutcomeUnknown, ConcurrencyConflict, ServiceUnavailable } from "@orders/domain/OrderError"
import type { OrderEventEnvelope } from "@orders/domain/OrderEvent"
import { decodeEvent, encodeEvent } from "@orders/domain/OrderEvent"
import { traced } from "@orders/domain/Tracing"
import type { ConfigError } from "effect"
import {
  Array as Arr,
  Clock,
  Config,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Metric,
  Option,
  Redacted,
  Schedule
} from "effect"
import type { Collection, Db, Document, IndexDescription, OptionalUnlessRequiredId, UpdateFilter } from "mongodb"
import {
  MongoClient,
  MongoError,
  MongoErrorLabel,
  MongoNetworkError,
  MongoOperationTimeoutError,
  MongoServerError,
  MongoServerSelectionError
} from "mongodb"
import * as GroupCommit from "./GroupCommit.js"
import { connectWithRetry, redactUrl, StartupError, startupRetry } from "./Startup.js"

export interface MongoOptions {
  readonly uri: string
  readonly database: string
  /** How long `unpublished` leaves a fresh append to its writer (default `EventStore.defaultGrace`). */
  readonly grace?: Duration.DurationInput
  /** How many commits this process remembers (default `knownCommits`). */
  readonly knownCommits?: number
}

/** One append: events `previous + 1 .. version` of a stream, encoded, validated again on every read. */
export interface CommitDocument {
  /** `<streamId>:<previous>`: ids never contain ':' (see `OrderId`). */
  readonly _id: string
  readonly streamId: string
  readonly previous: number
  readonly version: number
  readonly events: ReadonlyArray<unknown>
}

/** The outbox entry of whichever commit has (or will have) the same `_id`. */
export interface OutboxDocument {
  readonly _id: string
  readonly streamId: string
  readonly previous: number
  /** When the relay should look at it next. */
  readonly due: Date
  /** How many times the relay found no commit at its `_id` (back to 0 when a writer comes to it). */
  readonly misses: number
  /** The append that inserted it (a random id), and when by that writer's clock: for diagnostics only. */
  readonly owner: string
  readonly createdAt: Date
}

/** The outbox as an operator's consistency check sees it. */
export interface OutboxBacklog {
  /** Commits not yet known to be published (and orphans). */
  readonly entries: number
  /** How long ago the oldest entry was appended, by its writer's clock. */
  readonly oldest: Option.Option<Duration.Duration>
  /** Entries the relay last found without their commit: left by writers that died between their two inserts. */
  readonly orphans: number
}

export const COMMITS = "commits"
export const OUTBOX = "outbox"

const commitId = (streamId: string, previous: number) => `${streamId}:${previous}`

/**
 * A commit as this process knows it: its events as stored, in JSON, decoded
 * each time they are used (about 20 µs an event). A commit of one event takes
 * about 0.7 KB so, against 1.8 KB decoded (measured on the heap).
 */
interface KnownCommit {
  readonly streamId: string
  readonly previous: number
  readonly version: number
  /** The stored (encoded) events, as JSON. */
  readonly stored: string
}

/**
 * About 70 MB of commits remembered per process, the least recently used
 * forgotten first: the whole lives of tens of thousands of orders. A command
 * on a forgotten order reads it back, and FerretDB answers each lookup with a
 * scan of every commit: processing the oldest of 25,000 orders ran at 41
 * requests a second remembering a tenth of this, and at 296 with it.
 */
export const knownCommits = 100_000

/** The process's memory grows with it up to its bound, so operators see it beside `process_resident_memory_bytes`. */
export const knownCommitsGauge = Metric.gauge("orders_event_store_known_commits", {
  description: "Commits the event store remembers in this process (at most EVENT_STORE_KNOWN_COMMITS)"
})

/** How long the relay puts off a marker found without its commit: a minute, doubling with each miss, at most an hour. */
const orphanDelay = (misses: number) =>
  Duration.min(Duration.times(Duration.minutes(1), 2 ** misses), Duration.hours(1))

/** After a lost answer, the append asks again this often, within `settleTimeout` in all. */
const settleRetry = Schedule.exponential(Duration.millis(200)).pipe(Schedule.intersect(Schedule.recurs(4)))
const settleTimeout = Duration.seconds(10)

const closeTimeout = Duration.seconds(5)

/** How long marker deletes gather before they go, in one command. */
const markerDeleteLinger = Duration.millis(50)

/**
 * At most this many writes of one kind in one round trip, and one round trip
 * of each kind in flight: what arrives meanwhile goes in the next one. With
 * four in flight, batches held 1.4 writes on average at 32 clients, and a
 * create cost FerretDB and its PostgreSQL 1.7 ms of CPU; with one, 1.0 ms.
 */
const writeBatches = { maxBatch: 64, concurrency: 1 }

const SERVICE = "MongoDB"
const DUPLICATE_KEY = 11000

/**
 * Server codes that mean "not now" rather than "never": the retryable set of the
 * driver specifications, plus write-concern and time-limit expiry.
 */
const TRANSIENT_CODES: ReadonlySet<number> = new Set([
  6, // HostUnreachable
  7, // HostNotFound
  50, // MaxTimeMSExpired
  64, // WriteConcernFailed / WriteConcernTimeout
  89, // NetworkTimeout
  91, // ShutdownInProgress
  189, // PrimarySteppedDown
  262, // ExceededTimeLimit
  9001, // SocketException
  10058, // LegacyNotPrimary
  10107, // NotWritablePrimary
  11600, // InterruptedAtShutdown
  11602, // InterruptedDueToReplStateChange
  13435, // NotPrimaryNoSecondaryOk
  13436 // NotPrimaryOrSecondary
])

/**
 * Node's own socket errors, which the driver lets through unwrapped in one
 * case at least: a command written after the server closed the connection
 * ("This socket has been ended by the other party", EPIPE; seen when FerretDB
 * stopped in fault scenario 6).
 */
const SOCKET_ERRORS: ReadonlySet<string> = new Set(["EPIPE", "ECONNRESET", "ECONNREFUSED", "ECONNABORTED", "ETIMEDOUT"])

/** True for a failure that means "not now": the server is unreachable, busy, or between primaries. */
export const isUnavailable = (error: unknown): error is Error =>
  (error instanceof Error && !(error instanceof MongoError) &&
    SOCKET_ERRORS.has((error as NodeJS.ErrnoException).code ?? "")) ||
  error instanceof MongoNetworkError ||
  error instanceof MongoServerSelectionError ||
  error instanceof MongoOperationTimeoutError ||
  (error instanceof MongoError &&
    (error.hasErrorLabel(MongoErrorLabel.RetryableWriteError) ||
      error.hasErrorLabel(MongoErrorLabel.ResetPool) ||
      (typeof error.code === "number" && TRANSIENT_CODES.has(error.code))))

const isDuplicateKey = (error: unknown): boolean => error instanceof MongoServerError && error.code === DUPLICATE_KEY

/**
 * Runs one driver call. Failures a caller can act on (the server is unreachable
 * or busy) become `ServiceUnavailable`; anything else is a bug or a corrupt
 * deployment, hence a defect.
 */
const attempt = <A>(operation: string, run: () => Promise<A>): Effect.Effect<A, ServiceUnavailable> =>
  Effect.tryPromise({ try: run, catch: (error) => error }).pipe(
    Effect.catchAll((error) => failure(operation, error))
  )

const failure = (operation: string, error: unknown): Exit.Exit<never, ServiceUnavailable> =>
  isUnavailable(error)
    ? Exit.fail(new ServiceUnavailable({ service: SERVICE, message: `${operation}: ${error.message}` }))
    : Exit.die(error)

/** What the server answers an `insert` command: how many it wrote, and why each other one was refused. */
interface InsertReply {
  readonly n?: number
  readonly writeErrors?: ReadonlyArray<{ readonly index: number; readonly code: number; readonly errmsg?: string }>
  readonly writeConcernError?: { readonly code: number; readonly errmsg?: string }
}

/**
 * Inserts documents in one round trip, each on its own (unordered): per
 * document, true, false when its `_id` is taken, or why it failed. It sends
 * the `insert` command itself because the driver's `insertMany` reports a
 * lost connection as a bulk-write error without write errors, which reads
 * like "all written". Any answer but a complete one says nothing of any
 * single document: they all fail, and each append settles its own.
 */
const insertEach = (operation: string, db: Db, collection: string) =>
(
  documents: Arr.NonEmptyReadonlyArray<Document>
): Effect.Effect<ReadonlyArray<Exit.Exit<boolean, ServiceUnavailable>>> =>
  Effect.tryPromise({
    try: () => db.command({ insert: collection, documents, ordered: false }) as Promise<InsertReply>,
    catch: (error) => error
  }).pipe(
    Effect.match({
      onFailure: (error) => documents.map(() => failure(operation, error)),
      onSuccess: (reply) => {
        const refused = new Map((reply.writeErrors ?? []).map((writeError) => [writeError.index, writeError]))
        if (reply.writeConcernError !== undefined || (reply.n ?? 0) + refused.size !== documents.length) {
          const unknown = Exit.fail(
            new ServiceUnavailable({ service: SERVICE, message: `${operation}: incomplete answer to an insert` })
          )
          return documents.map(() => unknown)
        }
        return documents.map((_, i) => {
          const writeError = refused.get(i)
          if (writeError === undefined) return Exit.succeed(true)
          if (writeError.code === DUPLICATE_KEY) return Exit.succeed(false)
          return TRANSIENT_CODES.has(writeError.code)
            ? Exit.fail(new ServiceUnavailable({ service: SERVICE, message: `${operation}: ${writeError.errmsg}` }))
            : Exit.die(new Error(`${operation}: ${writeError.errmsg} (code ${writeError.code})`))
        })
      }
    })
  )

/** Inserts `document`; false when its `_id` is taken. */
const insertUnlessTaken = <T extends { readonly _id: string }>(
  operation: string,
  collection: Collection<T>,
  document: OptionalUnlessRequiredId<T>
) =>
  attempt(operation, () =>
    collection.insertOne(document).then(() => true, (error: unknown) => {
      if (isDuplicateKey(error)) return false
      throw error
    }))

/** The events of a commit this process knows, decoded. */
const eventsOf = (commit: KnownCommit) =>
  decodeStored(commit.streamId, JSON.parse(commit.stored) as ReadonlyArray<unknown>, commit.previous + 1)

/** Whether every event of the commit is among `versions`. */
const coveredBy = (commit: KnownCommit, versions: ReadonlySet<number>) => {
  for (let version = commit.previous + 1; version <= commit.version; version++) {
    if (!versions.has(version)) return false
  }
  return true
}

/** A stored event that does not decode, or sits at the wrong place, means the store is corrupt: no caller can recover. */
const decodeStored = (streamId: string, events: ReadonlyArray<unknown>, firstVersion: number) =>
  Effect.forEach(events, (encoded, i) => {
    const version = firstVersion + i
    return decodeEvent(encoded).pipe(
      Effect.catchAll((error) =>
        Effect.dieMessage(
          `event store corrupt: stream '${streamId}' version ${version} does not decode: ${error.message}`
        )
      ),
      Effect.filterOrDieMessage(
        (event) => event.streamId === streamId && event.version === version,
        `event store corrupt: stream '${streamId}' holds a misplaced event at version ${version}`
      )
    )
  })

/** A stored commit's events, decoded from whichever schema version wrote them, as every read of the store does. */
export const decodeCommit = (commit: CommitDocument): Effect.Effect<ReadonlyArray<OrderEventEnvelope>> =>
  decodeStored(commit.streamId, commit.events, commit.previous + 1)

/** The database named in a connection string's path, if any (`mongodb://host/orders` → `orders`). */
export const databaseFromUri = (uri: string): string | undefined => {
  const path = /^mongodb(?:\+srv)?:\/\/[^/?]*\/([^?]*)/.exec(uri)?.[1]
  return path === undefined || path === "" ? undefined : decodeURIComponent(path)
}

type NamedIndex = IndexDescription & { readonly name: string }

const commitIndexes: ReadonlyArray<NamedIndex> = [
  // Stream and version identify an event on a real MongoDB; the append's slow path queries it.
  { key: { streamId: 1, version: 1 }, name: "streamId_1_version_1", unique: true }
]
const outboxIndexes: ReadonlyArray<NamedIndex> = [
  // The relay's poll: due markers, soonest first, a batch at a time.
  { key: { due: 1, _id: 1 }, name: "due_1__id_1" },
  // The relay's check for an earlier commit of the same stream still in the outbox.
  { key: { streamId: 1, previous: 1 }, name: "streamId_1_previous_1" }
]

/**
 * Creates only the indexes that are missing: FerretDB 1.24 drops the
 * connection when asked to create an index that already exists.
 */
const createMissingIndexes = async (collection: Collection, indexes: ReadonlyArray<NamedIndex>) => {
  const listed = await collection.listIndexes().toArray().catch((error: unknown) => {
    // A collection that does not exist yet has no indexes (NamespaceNotFound).
    if (error instanceof MongoServerError && error.code === 26) return []
    throw error
  })
  const existing = new Set(listed.map((index) => index.name as string))
  const missing = indexes.filter((index) => !existing.has(index.name))
  if (missing.length > 0) await collection.createIndexes([...missing])
}

const connect = (options: MongoOptions) => {
  const address = redactUrl(options.uri)
  return Effect.acquireRelease(
    connectWithRetry(SERVICE, address, () =>
      new MongoClient(options.uri, {
        appName: "orders",
        writeConcern: { w: "majority" },
        readConcern: { level: "majority" },
        // A stopped server fails a request within seconds instead of queueing it for 30 s.
        serverSelectionTimeoutMS: 5_000,
        connectTimeoutMS: 5_000,
        // Only armed while an operation waits for its reply: a hung server becomes ServiceUnavailable.
        socketTimeoutMS: 20_000
      }).connect()),
    (client) =>
      Effect.promise(() => client.close()).pipe(
        Effect.interruptible,
        Effect.timeoutOption(closeTimeout),
        Effect.flatMap(Option.match({
          onSome: () => Effect.void,
          onNone: () => Effect.logWarning(`the MongoDB client did not close within ${Duration.format(closeTimeout)}`)
        }))
      )
  ).pipe(
    Effect.tap((client) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.tryPromise({
          try: async () => {
            const db = client.db(options.database)
            await createMissingIndexes(db.collection(COMMITS), commitIndexes)
            await createMissingIndexes(db.collection(OUTBOX), outboxIndexes)
            // Markers written before `due` existed: due now.
            await db.collection(OUTBOX).updateMany({ due: { $exists: false } }, {
              $set: { due: new Date(now), misses: 0 }
            })
          },
          catch: (cause) => new StartupError({ service: SERVICE, address, cause })
        }).pipe(
          // Two programs starting on a fresh database create the same index at once, and FerretDB drops the
          // connection of the second: the next attempt finds the index there.
          Effect.retry(startupRetry)
        ))
    )
  )
}

/**
 * The event store on the given MongoDB database; the client lives as long as
 * the scope. Beside the port's operations, `backlog` for operators.
 */
export const make = (options: MongoOptions) =>
  Effect.gen(function*() {
    const client = yield* connect(options)
    const scope = yield* Effect.scope
    const grace = Duration.decode(options.grace ?? defaultGrace)
    const db = client.db(options.database)
    const commits: Collection<CommitDocument> = db.collection<CommitDocument>(COMMITS)
    const outbox: Collection<OutboxDocument> = db.collection<OutboxDocument>(OUTBOX)

    // Concurrent appends share round trips; a lost answer is still settled one document at a time.
    const closing = (operation: string) =>
      new ServiceUnavailable({ service: SERVICE, message: `${operation}: the event store is closing` })
    const insertMarker = yield* GroupCommit.make({
      write: insertEach("append", db, OUTBOX),
      closed: closing("append"),
      ...writeBatches
    })
    const insertCommit = yield* GroupCommit.make({
      write: insertEach("append", db, COMMITS),
      closed: closing("append"),
      ...writeBatches
    })
    const deleteMarkers = yield* GroupCommit.make({
      // One `$in` per batch. FerretDB answers it with one read of the whole outbox, which holds only what is in
      // flight, and one delete; a `deleteOne` per marker cost it a scan of the outbox and a delete for each.
      write: (idLists: Arr.NonEmptyReadonlyArray<ReadonlyArray<string>>) =>
        attempt("markPublished", () => outbox.deleteMany({ _id: { $in: idLists.flat() } })).pipe(
          Effect.exit,
          Effect.map((outcome) => idLists.map(() => Exit.asVoid(outcome)))
        ),
      closed: closing("markPublished"),
      // Nobody waits on a marker's removal (the command handler does not): deletes gather for a while.
      maxBatch: 512,
      concurrency: 1,
      linger: markerDeleteLinger
    })

    /**
     * Commits never change once written, so the ones this process has written,
     * read or been delivered are kept: a stream read asks the server only for
     * the commit after the last one known, and the append's head check for none.
     * A map keeps insertion order: a commit recalled goes to the back.
     */
    const known = new Map<string, KnownCommit>()
    const remembered = options.knownCommits ?? knownCommits
    const remember = (commit: KnownCommit) => {
      const size = known.size
      known.set(commitId(commit.streamId, commit.previous), commit)
      if (known.size > remembered) known.delete(known.keys().next().value!)
      if (known.size !== size) knownCommitsGauge.unsafeUpdate(known.size, [])
    }
    const recall = (id: string) => {
      const commit = known.get(id)
      if (commit !== undefined) {
        known.delete(id)
        known.set(id, commit)
      }
      return commit
    }

    /** Remembers a commit as stored; its events are validated when they are decoded. */
    const learnFound = (found: Omit<CommitDocument, "_id">): KnownCommit => {
      const commit = {
        streamId: found.streamId,
        previous: found.previous,
        version: found.version,
        stored: JSON.stringify(found.events)
      }
      remember(commit)
      return commit
    }

    /** The whole appends among delivered events, as the commits they are: the next ones on their streams need no read. */
    const learn = (events: ReadonlyArray<OrderEventEnvelope>) =>
      Effect.sync(() => {
        const appends = Arr.groupBy(
          events.filter((event) => event.metadata.append !== undefined),
          (event) => commitId(event.streamId, event.metadata.append!.first - 1)
        )
        for (const [id, delivered] of Object.entries(appends)) {
          const { first, last } = delivered[0].metadata.append!
          const inOrder = delivered.sort((a, b) => a.version - b.version)
          const whole = inOrder.length === last - first + 1 && inOrder.every((event, i) => event.version === first + i)
          if (whole && !known.has(id)) {
            learnFound({
              streamId: inOrder[0]!.streamId,
              previous: first - 1,
              version: last,
              events: inOrder.map(encodeEvent)
            })
          }
        }
      })

    const commitAt = (streamId: string, previous: number): Effect.Effect<KnownCommit | null, ServiceUnavailable> => {
      const cached = recall(commitId(streamId, previous))
      if (cached !== undefined) return Effect.succeed(cached)
      return attempt("read", () => commits.findOne({ _id: commitId(streamId, previous) })).pipe(
        Effect.map((found) => found === null ? null : learnFound(found))
      )
    }

    /** The commits that exist at these `_id`s: the known ones from memory, the others in one query. */
    const commitsAt = (ids: ReadonlyArray<string>) =>
      Effect.gen(function*() {
        const found = new Map<string, KnownCommit>()
        const missing: Array<string> = []
        for (const id of ids) {
          const cached = recall(id)
          if (cached === undefined) missing.push(id)
          else found.set(id, cached)
        }
        if (missing.length > 0) {
          const documents = yield* attempt("unpublished", () => commits.find({ _id: { $in: missing } }).toArray())
          for (const document of documents) found.set(document._id, learnFound(document))
        }
        return found
      })

    /**
     * True when a commit ends exactly at `version`: only such a version can be
     * followed. The decider emits one event per command, so the commit is
     * nearly always the one at `version - 1`; the query covers multi-event commits.
     */
    const isHead = (streamId: string, version: number) =>
      Effect.gen(function*() {
        const single = yield* commitAt(streamId, version - 1)
        if (single?.version === version) return true
        const found = yield* attempt("append", () => commits.findOne({ streamId, version }, { projection: { _id: 1 } }))
        return found !== null
      })

    /**
     * After a lost answer: inserts the commit again until its `_id` tells
     * whose commit is there (ours may have landed: same event ids), within
     * `settleTimeout`. It runs in the store's scope, so that the time limit
     * can stop it while the append stays uninterruptible.
     */
    const settle = (document: CommitDocument, events: Arr.NonEmptyReadonlyArray<OrderEventEnvelope>) =>
      insertUnlessTaken("append", commits, document).pipe(
        Effect.flatMap((inserted) =>
          inserted ? Effect.succeed(true) : commitAt(document.streamId, document.previous).pipe(
            Effect.flatMap((found) =>
              found === null
                // Taken, yet not readable: an insert not yet majority-committed.
                ? Effect.fail(new ServiceUnavailable({ service: SERVICE, message: "append: commit not visible yet" }))
                : Effect.map(eventsOf(found), (stored) =>
                  stored.length === events.length &&
                  stored.every((event, i) => event.eventId === events[i]!.eventId))
            )
          )
        ),
        Effect.retry(settleRetry),
        Effect.interruptible,
        Effect.timeoutFail({
          duration: settleTimeout,
          onTimeout: () => new ServiceUnavailable({ service: SERVICE, message: "append: no answer" })
        }),
        Effect.forkIn(scope),
        Effect.flatMap(Fiber.join),
        Effect.catchTag("ServiceUnavailable", (error) =>
          Effect.fail(AppendOutcomeUnknown.of(document.streamId, error.message)))
      )

    const append = Effect.fnUntraced(
      function*(streamId: OrderId, expectedVersion: number, events: Arr.NonEmptyReadonlyArray<OrderEventEnvelope>) {
        yield* assertContiguous(streamId, expectedVersion, events)
        // Made only when needed: an error captures a stack trace, which every append paid for.
        const conflict = () =>
          ConcurrencyConflict.of(streamId, expectedVersion)
        // Commits are immutable, so this check cannot go stale; the unique commit `_id` decides the race.
        if (expectedVersion > 0 && !(yield* isHead(streamId, expectedVersion))) {
          return yield* Effect.fail(conflict())
        }
        const _id = commitId(streamId, expectedVersion)
        const now = yield* Clock.currentTimeMillis
        const due = new Date(now + Duration.toMillis(grace))
        const marker = {
          _id,
          streamId,
          previous: expectedVersion,
          due,
          misses: 0,
          owner: crypto.randomUUID(),
          createdAt: new Date(now)
        }
        if (!(yield* insertMarker(marker))) {
          // Another append's marker, maybe an orphan: it covers whichever commit lands at `_id`, ours included.
          if ((yield* commitAt(streamId, expectedVersion)) !== null) {
            return yield* Effect.fail(conflict())
          }
          // The relay may have put it off as an orphan; our commit is due like a fresh one.
          yield* attempt("append", () => outbox.updateOne({ _id }, { $min: { due }, $set: { misses: 0 } }))
        }
        const version = expectedVersion + events.length
        const document = { _id, streamId, previous: expectedVersion, version, events: events.map(encodeEvent) }
        const inserted = yield* insertCommit(document).pipe(
          // The answer was lost, maybe not the write.
          Effect.catchTag("ServiceUnavailable", () => settle(document, events))
        )
        if (!inserted) return yield* Effect.fail(conflict())
        learnFound(document)
      },
      Effect.uninterruptible,
      traced("EventStoreMongo.append")
    )

    const read = Effect.fnUntraced(function*(streamId: OrderId) {
      const events: Array<OrderEventEnvelope> = []
      let commit = yield* commitAt(streamId, 0)
      while (commit !== null) {
        events.push(...(yield* eventsOf(commit)))
        commit = yield* commitAt(streamId, commit.version)
      }
      return events
    }, traced("EventStoreMongo.read"))

    const readKnown = (streamId: OrderId, through = 0) =>
      Effect.gen(function*() {
        const events: Array<OrderEventEnvelope> = []
        let commit: KnownCommit | null | undefined = recall(commitId(streamId, 0))
        if (commit === undefined && through > 0) commit = yield* commitAt(streamId, 0)
        while (commit !== undefined && commit !== null) {
          events.push(...(yield* eventsOf(commit)))
          const next = commitId(streamId, commit.version)
          // Past `through`, the server is not asked: looking for an end that may not be there is a scan on FerretDB.
          commit = recall(next) ?? (commit.version < through ? yield* commitAt(streamId, commit.version) : undefined)
        }
        return events
      })

    /** Moves a marker's `due`, unless a writer moved it meanwhile. */
    const reschedule = (marker: OutboxDocument, update: UpdateFilter<OutboxDocument>) =>
      attempt("unpublished", () => outbox.updateOne({ _id: marker._id, due: marker.due }, update))

    const unpublished = Effect.fn("EventStoreMongo.unpublished")(function*(limit: number) {
      if (limit <= 0) return []
      const now = yield* Clock.currentTimeMillis
      const markers = yield* attempt("unpublished", () =>
        outbox.find({ due: { $lte: new Date(now) } }).sort({ due: 1, _id: 1 }).limit(limit).toArray())
      if (markers.length === 0) {
        return []
      }
      const ids = markers.map((marker) =>
        marker._id
      )
      const found = yield* commitsAt(ids)
      // Writers' clocks differ, and markers get put off: a commit must not overtake an earlier one of its stream.
      const inBatch = new Set(ids)
      const others = yield* attempt("unpublished", () =>
        outbox.find(
          { streamId: { $in: Arr.dedupe(markers.map((marker) => marker.streamId)) } },
          { projection: { streamId: 1, previous: 1, due: 1 } }
        ).toArray())
      const firstOutside = new Map<string, Pick<OutboxDocument, "previous" | "due">>()
      for (const other of others) {
        if (!inBatch.has(other._id) && other.previous < (firstOutside.get(other.streamId)?.previous ?? Infinity)) {
          firstOutside.set(other.streamId, other)
        }
      }
      const ready: Array<KnownCommit> = []
      for (const marker of markers) {
        const commit = found.get(marker._id)
        const earlier = firstOutside.get(marker.streamId)
        if (commit === undefined) {
          // Being written right now, or an orphan: looked at again later, later each time.
          const next = new Date(now + Duration.toMillis(orphanDelay(marker.misses)))
          yield* reschedule(marker, { $set: { due: next }, $inc: { misses: 1 } })
        } else if (earlier !== undefined && earlier.previous < marker.previous) {
          yield* reschedule(marker, { $set: { due: new Date(earlier.due.getTime() + 1) } })
        } else {
          ready.push(commit)
        }
      }
      return (yield* Effect.forEach(inVersionOrder(ready), eventsOf)).flat()
    })

    const markPublished = Effect.fnUntraced(
      function*(events: Arr.NonEmptyReadonlyArray<OrderEventEnvelope>) {
        const streamId = events[0].streamId
        const versions = new Set(events.map((event) => event.version))
        const last = Math.max(...versions)
        const covered: Array<string> = []
        // Walks the stream's commits over these versions; this process nearly always knows them.
        let commit = yield* commitAt(streamId, Math.min(...versions) - 1)
        while (commit !== null) {
          if (coveredBy(commit, versions)) {
            covered.push(commitId(streamId, commit.previous))
          }
          commit = commit.version < last ? yield* commitAt(streamId, commit.version) : null
        }
        if (covered.length > 0) yield* deleteMarkers(covered)
      },
      traced("EventStoreMongo.markPublished")
    )

    const backlog = Effect.fn("EventStoreMongo.backlog")(function*() {
      const now = yield* Clock.currentTimeMillis
      const [entries, oldest, orphans] = yield* Effect.all([
        attempt("backlog", () => outbox.countDocuments()),
        // Unindexed: an operator's occasional check may scan the outbox.
        attempt("backlog", () => outbox.findOne({}, { sort: { createdAt: 1 } })),
        attempt("backlog", () => outbox.countDocuments({ misses: { $gt: 0 } }))
      ])
      return {
        entries,
        oldest: Option.map(
          Option.fromNullable(oldest),
          (entry) => Duration.millis(Math.max(0, now - entry.createdAt.getTime()))
        ),
        orphans
      } satisfies OutboxBacklog
    })

    return { append, read, readKnown, learn, unpublished, markPublished, backlog } satisfies EventStoreShape & {
      readonly backlog: () => Effect.Effect<OutboxBacklog, ServiceUnavailable>
    }
  })

/** Each stream's commits keep their places in the batch, taken in version order. */
const inVersionOrder = (batch: ReadonlyArray<KnownCommit>): ReadonlyArray<KnownCommit> => {
  const queues = new Map<string, Array<KnownCommit>>()
  for (const commit of batch) {
    const queue = queues.get(commit.streamId)
    if (queue === undefined) queues.set(commit.streamId, [commit])
    else queue.push(commit)
  }
  for (const queue of queues.values()) queue.sort((a, b) => a.previous - b.previous)
  return batch.map((commit) => queues.get(commit.streamId)!.shift()!)
}

export const layer = (options: MongoOptions): Layer.Layer<EventStore, StartupError> =>
  Layer.scoped(EventStore, make(options))

/**
 * `MONGODB_URI` (default `mongodb://127.0.0.1:27017/orders`; the database is
 * the URI's path, else `orders`), as every program and command reads it.
 */
export const connectionConfig: Config.Config<MongoOptions> = Config.redacted("MONGODB_URI").pipe(
  Config.withDefault(Redacted.make("mongodb://127.0.0.1:27017/orders")),
  Config.map((redacted) => {
    const uri = Redacted.value(redacted)
    return { uri, database: databaseFromUri(uri) ?? "orders" }
  })
)

/** `connectionConfig`, `OUTBOX_RELAY_GRACE` (default 5 seconds) and `EVENT_STORE_KNOWN_COMMITS` (default `knownCommits`). */
export const optionsConfig: Config.Config<MongoOptions> = Config.all({
  connection: connectionConfig,
  grace: Config.duration("OUTBOX_RELAY_GRACE").pipe(Config.withDefault(defaultGrace)),
  knownCommits: Config.integer("EVENT_STORE_KNOWN_COMMITS").pipe(
    Config.withDefault(knownCommits),
    Config.validate({ message: "must be 0 or more", validation: (n) => n >= 0 })
  )
}).pipe(Config.map(({ connection, ...options }) => ({ ...connection, ...options })))

export const layerConfig: Layer.Layer<EventStore, StartupError | ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(optionsConfig, layer)
)
