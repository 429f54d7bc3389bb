/**
 * The event store on MongoDB (or FerretDB).
 *
 * Each append is ONE document, a commit, holding all of its encoded events: a
 * single-document insert is atomic without transactions. The commit's `_id` is
 * `<streamId>:<expectedVersion>`, so at most one commit can ever follow a given
 * version, and the server's unique `_id` decides between concurrent writers.
 *
 * Why not one document per stream with a version-guarded `updateOne`: FerretDB
 * 1.x runs an update as query, then in-memory change, then replace, so several
 * concurrent updates with the same guard all match and all `$push` (measured:
 * 18 of 20 races had several winners). Inserts against a unique key are the one
 * conditional write both servers make atomic.
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
  /** Events up to this version reached the bus; meaningful while `pending`. */
  readonly publishedVersion: number
  readonly pending: boolean
}

export const COLLECTION = "commits"

/** The not yet published events of one commit: versions `from ..`. */
interface PendingSlice {
  readonly streamId: string
  readonly from: number
  readonly events: ReadonlyArray<unknown>
}

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

const indexes: ReadonlyArray<IndexDescription & { readonly name: string }> = [
  { key: { streamId: 1, version: 1 }, name: "streamId_1_version_1", unique: true },
  { key: { pending: 1 }, name: "pending_1" }
]

/**
 * Creates only the indexes that are missing: FerretDB 1.24 drops the
 * connection when asked to create an index that already exists.
 */
const createMissingIndexes = async (collection: Collection) => {
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
        try: () => createMissingIndexes(client.db(options.database).collection(COLLECTION)),
        catch: (cause) => new StartupError({ service: SERVICE, address, cause })
      })
    )
  )
}

/** The event store on the given MongoDB database; the client lives as long as the scope. */
export const make = (options: MongoOptions) =>
  Effect.gen(function*() {
    const client = yield* connect(options)
    const commits: Collection<CommitDocument> = client.db(options.database).collection<CommitDocument>(COLLECTION)

    const append = Effect.fn("EventStoreMongo.append")(function*(
      streamId: OrderId,
      expectedVersion: number,
      events: ReadonlyArray<OrderEventEnvelope>
    ) {
      yield* assertContiguous(streamId, expectedVersion, events)
      const conflict = ConcurrencyConflict.of(streamId, expectedVersion)
      // The unique `_id` cannot tell "ahead of the stream" (or inside one commit) from "at its head": only a
      // commit ending at `expectedVersion` can be followed. Commits are immutable, so this read cannot go stale.
      if (expectedVersion > 0) {
        const head = yield* attempt("append", () =>
          commits.findOne({ streamId, version: expectedVersion }, { projection: { _id: 1 } }))
        if (head === null) {
          return yield* Effect.fail(conflict)
        }
      }
      yield* attempt(
        "append",
        () =>
          commits.insertOne({
            _id: `${streamId}:${expectedVersion}`,
            streamId,
            previous: expectedVersion,
            version: expectedVersion + events.length,
            events: events.map(encodeEvent),
            publishedVersion: expectedVersion,
            pending: true
          }),
        (error) => (isDuplicateKey(error) ? conflict : undefined)
      )
    })

    const read = Effect.fn("EventStoreMongo.read")(function*(streamId: OrderId) {
      const found = yield* attempt("read", () =>
        commits.find({ streamId }, { projection: { previous: 1, version: 1, events: 1 } }).sort({ version: 1 })
          .toArray())
      let head = 0
      for (const commit of found) {
        if (commit.previous !== head) {
          return yield* Effect.dieMessage(
            `event store corrupt: stream '${streamId}' has no commit after version ${head}`
          )
        }
        head = commit.version
      }
      const decoded = yield* Effect.forEach(
        found,
        (commit) =>
          decodeStored(streamId, commit.events, commit.previous + 1)
      )
      return decoded.flat()
    })

    const unpublished = Effect.fn("EventStoreMongo.unpublished")(function*(limit: number) {
      if (limit <= 0) {
        return []
      }
      const pending = yield* attempt("unpublished", async () => {
        const found: Array<PendingSlice> = []
        let count = 0
        const cursor = commits
          .find({ pending: true }, { projection: { streamId: 1, previous: 1, events: 1, publishedVersion: 1 } })
          .sort({ streamId: 1, version: 1 })
        try {
          for await (const commit of cursor) {
            const skip = Math.max(0, commit.publishedVersion - commit.previous)
            const events = commit.events.slice(skip, skip + limit - count)
            if (events.length > 0) {
              found.push({ streamId: commit.streamId, from: commit.previous + skip + 1, events })
            }
            count += events.length
            if (count >= limit) {
              break
            }
          }
        } finally {
          await cursor.close()
        }
        return found
      })
      const decoded = yield* Effect.forEach(
        pending,
        (commit) =>
          decodeStored(commit.streamId, commit.events, commit.from)
      )
      return decoded.flat()
    })

    const markPublished = Effect.fn("EventStoreMongo.markPublished")(function*(streamId: OrderId, version: number) {
      yield* attempt(
        "markPublished",
        () =>
          commits.updateMany({ streamId, pending: true, version: { $lte: version } }, { $set: { pending: false } })
      )
      // A commit published only in part (the outbox limit cut it) stays pending, past its published events.
      yield* attempt("markPublished", () =>
        commits.updateOne(
          { streamId, pending: true, previous: { $lt: version }, version: { $gt: version } },
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
