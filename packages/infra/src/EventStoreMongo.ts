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
 * The outbox is a second, small collection: a marker per commit not yet
 * published, inserted before the commit (so a process that dies in between
 * leaves a marker, never an unmarked commit) and deleted once published.
 *
 * Why this shape: FerretDB 1.x runs an update as query, then in-memory change,
 * then replace, so concurrent version-guarded updates all win (measured: 18 of
 * 20 races had several winners); inserts against a unique key are the one
 * conditional write both servers make atomic. And FerretDB 1.x uses no index
 * to answer a query: a filter on `_id` becomes an SQLite scan, any other
 * filter a scan in FerretDB itself, ten times slower (0.2 ms a document here).
 * So the hot path asks only for `_id`s, and the relay polls a small collection.
 */
import type { EventStoreShape } from "@orders/domain/EventStore"
import { assertContiguous, EventStore } from "@orders/domain/EventStore"
import { ConcurrencyConflict, ServiceUnavailable } from "@orders/domain/OrderError"
import type { OrderEventEnvelope, OrderId } from "@orders/domain/OrderEvent"
import { decodeEvent, encodeEvent } from "@orders/domain/OrderEvent"
import type { ConfigError } from "effect"
import { Config, Effect, Layer, Redacted } from "effect"
import type { Collection, IndexDescription } from "mongodb"
import {
  MongoClient,
  MongoError,
  MongoErrorLabel,
  MongoNetworkError,
  MongoOperationTimeoutError,
  MongoServerError,
  MongoServerSelectionError
} from "mongodb"
import { connectWithRetry, redactUrl, StartupError } from "./Startup.js"

export interface MongoOptions {
  readonly uri: string
  readonly database: string
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

/** A commit whose events have not all reached the bus; same `_id` as the commit. */
export interface OutboxDocument {
  readonly _id: string
  readonly streamId: string
  readonly previous: number
  readonly version: number
  /** Events up to this version reached the bus (the relay may publish a commit in parts). */
  readonly publishedVersion: number
  readonly createdAt: Date
}

export const COMMITS = "commits"
export const OUTBOX = "outbox"

/**
 * A marker whose commit never appeared, this long after it was made: its
 * writer died between the two inserts, and the stream's next append waits
 * for the marker to go.
 */
const ORPHAN_AFTER_MS = 60_000

const commitId = (streamId: string, previous: number) => `${streamId}:${previous}`

/** A commit as this process knows it, its events decoded. */
interface KnownCommit {
  readonly streamId: string
  readonly previous: number
  readonly version: number
  readonly events: ReadonlyArray<OrderEventEnvelope>
}

/** About 10 MB of commits remembered per process. */
const KNOWN_COMMITS = 10_000

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

const isUnavailable = (error: unknown): error is MongoError =>
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
 * or busy) become `ServiceUnavailable`; `expected` picks out the ones the
 * operation itself gives a meaning to; anything else is a bug or a corrupt
 * deployment, hence a defect.
 */
const attempt = <A, E = never>(
  operation: string,
  run: () => Promise<A>,
  expected: (error: unknown) => E | undefined = () => undefined
): Effect.Effect<A, E | ServiceUnavailable> =>
  Effect.tryPromise({ try: run, catch: (error) => error }).pipe(
    Effect.catchAll((error): Effect.Effect<never, E | ServiceUnavailable> => {
      const known = expected(error)
      if (known !== undefined) return Effect.fail(known)
      if (isUnavailable(error)) {
        return Effect.fail(new ServiceUnavailable({ service: SERVICE, message: `${operation}: ${error.message}` }))
      }
      return Effect.die(error)
    })
  )

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
const outboxIndexes: ReadonlyArray<NamedIndex> = [{ key: { streamId: 1, version: 1 }, name: "streamId_1_version_1" }]

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
    (client) => Effect.promise(() => client.close())
  ).pipe(
    Effect.tap((client) =>
      Effect.tryPromise({
        try: async () => {
          const db = client.db(options.database)
          await createMissingIndexes(db.collection(COMMITS), commitIndexes)
          await createMissingIndexes(db.collection(OUTBOX), outboxIndexes)
        },
        catch: (cause) => new StartupError({ service: SERVICE, address, cause })
      })
    )
  )
}

/** The event store on the given MongoDB database; the client lives as long as the scope. */
export const make = (options: MongoOptions) =>
  Effect.gen(function*() {
    const client = yield* connect(options)
    const db = client.db(options.database)
    const commits: Collection<CommitDocument> = db.collection<CommitDocument>(COMMITS)
    const outbox: Collection<OutboxDocument> = db.collection<OutboxDocument>(OUTBOX)

    /**
     * Commits never change once written, so the ones this process has written
     * or read are kept, decoded: a stream read asks the server only for the
     * commit after the last one known, and the append's head check for none.
     */
    const known = new Map<string, KnownCommit>()
    const remember = (commit: KnownCommit) => {
      known.set(commitId(commit.streamId, commit.previous), commit)
      if (known.size > KNOWN_COMMITS) known.delete(known.keys().next().value!)
    }

    /** Decodes a commit read from the server, and remembers it. */
    const learn = (found: CommitDocument): Effect.Effect<KnownCommit> =>
      decodeStored(found.streamId, found.events, found.previous + 1).pipe(
        Effect.map((events) => ({
          streamId: found.streamId,
          previous: found.previous,
          version: found.version,
          events
        })),
        Effect.tap(remember)
      )

    const commitAt = (streamId: string, previous: number): Effect.Effect<KnownCommit | null, ServiceUnavailable> => {
      const cached = known.get(commitId(streamId, previous))
      if (cached !== undefined) return Effect.succeed(cached)
      return attempt("read", () => commits.findOne({ _id: commitId(streamId, previous) })).pipe(
        Effect.flatMap((found) => found === null ? Effect.succeed(null) : learn(found))
      )
    }

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

    const append = Effect.fn("EventStoreMongo.append")(function*(
      streamId: OrderId,
      expectedVersion: number,
      events: ReadonlyArray<OrderEventEnvelope>
    ) {
      yield* assertContiguous(streamId, expectedVersion, events)
      const conflict = ConcurrencyConflict.of(streamId, expectedVersion)
      // Commits are immutable, so this check cannot go stale; the unique `_id`s below decide the race.
      if (expectedVersion > 0 && !(yield* isHead(streamId, expectedVersion))) return yield* Effect.fail(conflict)
      const _id = commitId(streamId, expectedVersion)
      const version = expectedVersion + events.length
      const duplicateIsConflict = (error: unknown) => (isDuplicateKey(error) ? conflict : undefined)
      yield* attempt(
        "append",
        () =>
          outbox.insertOne({
            _id,
            streamId,
            previous: expectedVersion,
            version,
            publishedVersion: expectedVersion,
            createdAt: new Date()
          }),
        duplicateIsConflict
      )
      yield* attempt(
        "append",
        () => commits.insertOne({ _id, streamId, previous: expectedVersion, version, events: events.map(encodeEvent) }),
        duplicateIsConflict
      ).pipe(
        Effect.tap(() => remember({ streamId, previous: expectedVersion, version, events })),
        // The version was taken after all (its marker already gone): ours must not make the relay republish it.
        Effect.tapError((error) =>
          error._tag === "ConcurrencyConflict"
            ? Effect.ignore(attempt("append", () => outbox.deleteOne({ _id })))
            : Effect.void
        )
      )
    })

    const read = Effect.fn("EventStoreMongo.read")(function*(streamId: OrderId) {
      const events: Array<OrderEventEnvelope> = []
      let commit = yield* commitAt(streamId, 0)
      while (commit !== null) {
        events.push(...commit.events)
        commit = yield* commitAt(streamId, commit.version)
      }
      return events
    })

    const unpublished = Effect.fn("EventStoreMongo.unpublished")(function*(limit: number) {
      const events: Array<OrderEventEnvelope> = []
      if (limit <= 0) return events
      const markers = yield* attempt("unpublished", () => outbox.find().sort({ streamId: 1, version: 1 }).toArray())
      if (markers.length === 0) return events
      // Usually this process wrote the commits itself: only the others are asked for, in one query.
      const byId = new Map<string, KnownCommit>()
      for (const marker of markers) {
        const cached = known.get(marker._id)
        if (cached !== undefined) byId.set(marker._id, cached)
      }
      const missing = markers.filter((marker) => !byId.has(marker._id)).map((marker) => marker._id)
      if (missing.length > 0) {
        const found = yield* attempt("unpublished", () => commits.find({ _id: { $in: missing } }).toArray())
        for (const commit of found) byId.set(commit._id, yield* learn(commit))
      }
      for (const marker of markers) {
        if (events.length >= limit) {
          break
        }
        const commit = byId.get(marker._id)
        if (commit === undefined) {
          // Being appended right now, or an orphan of a writer that died between the two inserts.
          if (Date.now() - marker.createdAt.getTime() > ORPHAN_AFTER_MS) {
            yield* attempt("unpublished", () => outbox.deleteOne({ _id: marker._id, createdAt: marker.createdAt }))
          }
          continue
        }
        const skip = Math.max(0, marker.publishedVersion - commit.previous)
        events.push(...commit.events.slice(skip, skip + limit - events.length))
      }
      return events
    })

    const markPublished = Effect.fn("EventStoreMongo.markPublished")(function*(streamId: OrderId, version: number) {
      yield* attempt("markPublished", () => outbox.deleteMany({ streamId, version: { $lte: version } }))
      // A commit published only in part (the relay's limit cut it) stays in the outbox, past its published events.
      yield* attempt("markPublished", () =>
        outbox.updateMany(
          { streamId, previous: { $lt: version }, version: { $gt: version } },
          { $max: { publishedVersion: version } }
        ))
    })

    return { append, read, unpublished, markPublished } satisfies EventStoreShape
  })

export const layer = (options: MongoOptions): Layer.Layer<EventStore, StartupError> =>
  Layer.scoped(EventStore, make(options))

/** `MONGODB_URI` (default `mongodb://127.0.0.1:27017/orders`); the database is the URI's path, else `orders`. */
export const layerConfig: Layer.Layer<EventStore, StartupError | ConfigError.ConfigError> = Layer.unwrapEffect(
  Config.redacted("MONGODB_URI").pipe(
    Config.withDefault(Redacted.make("mongodb://127.0.0.1:27017/orders")),
    Effect.map((redacted) => {
      const uri = Redacted.value(redacted)
      return layer({ uri, database: databaseFromUri(uri) ?? "orders" })
    })
  )
)
