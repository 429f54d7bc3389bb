/**
 * The event store read whole, for the operator commands (`ConsistencyCheck`,
 * `ReadModelRebuild`): every commit in `_id` order, grouped by stream and
 * decoded, with what is wrong with each stream's chain; and the outbox.
 *
 * The `_id` order groups a stream's commits: `<streamId>:<previous>`, and no
 * id contains ':' or ';', so the commits of stream `s` are exactly the `_id`s
 * in [`s:`, `s;`), ranges that never interleave. A scan can therefore start
 * after the last stream it finished (`after`), and one stream at a time is
 * held in memory. FerretDB answers any query with a scan of the collection
 * (see `EventStoreMongo`); a real MongoDB walks its `_id` index.
 */
import type { OrderId } from "@orders/domain/Order"
import type { OrderEventEnvelope } from "@orders/domain/OrderEvent"
import { decodeEvent } from "@orders/domain/OrderEvent"
import type { ConfigError } from "effect"
import { Chunk, Duration, Effect, Either, Layer, Option, Stream } from "effect"
import type { Collection, Filter } from "mongodb"
import { MongoClient } from "mongodb"
import type { CommitDocument, OutboxDocument } from "./EventStoreMongo.js"
import { COMMITS, connectionConfig, OUTBOX } from "./EventStoreMongo.js"
import { connectWithRetry, redactUrl } from "./Startup.js"
import type { StartupError } from "./Startup.js"

export interface EventStoreScanOptions {
  readonly uri: string
  readonly database: string
}

/** Something wrong with a stream's chain of commits: the store's `read` does not return all of the stream. */
export interface ChainAnomaly {
  /**
   * `gap`: a commit after versions no commit holds; `fork`: a commit claiming
   * versions the chain already holds; `corrupt`: a commit whose fields or
   * events do not fit its `_id` (the chain stops before it).
   */
  readonly kind: "gap" | "fork" | "corrupt"
  readonly streamId: string
  /** The `_id` of the commit concerned. */
  readonly commit: string
  readonly detail: string
}

/** One stream as the store holds it. */
export interface StreamHistory {
  readonly streamId: string
  /** The `_id`s of all its commits, reachable or not. */
  readonly commits: ReadonlyArray<string>
  /** What the store's `read` returns: the events of the commits reachable from `<streamId>:0`, decoded. */
  readonly events: ReadonlyArray<OrderEventEnvelope>
  readonly anomalies: ReadonlyArray<ChainAnomaly>
}

const closeTimeout = Duration.seconds(5)

/** The driver's failures end an operator command: nothing in it could retry them usefully. */
const query = <A>(operation: string, run: () => Promise<A>) =>
  Effect.tryPromise({
    try: run,
    catch: (cause) => new Error(`MongoDB ${operation}: ${cause instanceof Error ? cause.message : String(cause)}`)
  }).pipe(Effect.orDie)

/** The decoded events of a commit, or why they cannot be. */
const decodeCommit = (commit: CommitDocument) =>
  Effect.forEach(commit.events, (encoded, i) =>
    decodeEvent(encoded).pipe(
      Effect.filterOrFail(
        (event) => event.streamId === commit.streamId && event.version === commit.previous + i + 1,
        () => ({ message: `event ${i} is not version ${commit.previous + i + 1} of '${commit.streamId}'` })
      )
    )).pipe(Effect.either)

/**
 * Follows a stream's commits from `<streamId>:0`, as the store's `read` does,
 * and names every commit left aside. Each is a gap when it starts after the
 * chain's end, a fork when it claims versions the chain holds.
 */
export const followChain = (streamId: string, commits: ReadonlyArray<CommitDocument>) =>
  Effect.gen(function*() {
    const anomalies: Array<ChainAnomaly> = []
    const byPrevious = new Map<number, CommitDocument>()
    for (const commit of commits) {
      const wellFormed = commit._id === `${streamId}:${commit.previous}` && commit.streamId === streamId &&
        commit.version - commit.previous === commit.events.length && commit.events.length > 0
      if (wellFormed) byPrevious.set(commit.previous, commit)
      else {
        anomalies.push({
          kind: "corrupt",
          streamId,
          commit: commit._id,
          detail: `holds ${commit.events.length} events for versions ${commit.previous + 1}..${commit.version}`
        })
      }
    }
    const events: Array<OrderEventEnvelope> = []
    const reached = new Set<string>()
    let head = 0
    for (let commit = byPrevious.get(0); commit !== undefined; commit = byPrevious.get(head)) {
      const decoded = yield* decodeCommit(commit)
      if (Either.isLeft(decoded)) {
        anomalies.push({ kind: "corrupt", streamId, commit: commit._id, detail: decoded.left.message })
        reached.add(commit._id)
        break
      }
      events.push(...decoded.right)
      reached.add(commit._id)
      head = commit.version
    }
    for (const commit of byPrevious.values()) {
      if (reached.has(commit._id)) continue
      anomalies.push(
        commit.previous < head
          ? {
            kind: "fork",
            streamId,
            commit: commit._id,
            detail: `claims versions ${commit.previous + 1}..${commit.version}, the chain holds 1..${head}`
          }
          : {
            kind: "gap",
            streamId,
            commit: commit._id,
            detail: `versions ${head + 1}..${commit.previous} are in no reachable commit`
          }
      )
    }
    return {
      streamId,
      commits: commits.map((commit) => commit._id),
      events,
      anomalies
    } satisfies StreamHistory
  })

/** The upper bound of a stream's `_id` range: `;` follows `:`. */
const endOfStream = (streamId: string) => `${streamId};`

export class EventStoreScan extends Effect.Service<EventStoreScan>()("orders/EventStoreScan", {
  scoped: (options: EventStoreScanOptions) =>
    Effect.gen(function*() {
      const address = redactUrl(options.uri)
      const client = yield* Effect.acquireRelease(
        connectWithRetry("MongoDB", address, () =>
          new MongoClient(options.uri, {
            appName: "orders-operator",
            readConcern: { level: "majority" },
            serverSelectionTimeoutMS: 5_000,
            connectTimeoutMS: 5_000
          }).connect()),
        (client) =>
          Effect.promise(() => client.close()).pipe(
            Effect.timeoutOption(closeTimeout),
            Effect.flatMap(Option.match({
              onSome: () => Effect.void,
              onNone: () =>
                Effect.logWarning(`the MongoDB client did not close within ${Duration.format(closeTimeout)}`)
            }))
          )
      )
      const db = client.db(options.database)
      const commits: Collection<CommitDocument> = db.collection<CommitDocument>(COMMITS)
      const outbox: Collection<OutboxDocument> = db.collection<OutboxDocument>(OUTBOX)

      const scan = (filter: Filter<CommitDocument>): Stream.Stream<StreamHistory> =>
        Stream.acquireRelease(
          Effect.sync(() => commits.find(filter).sort({ _id: 1 }).batchSize(5_000)),
          (cursor) => Effect.promise(() => cursor.close())
        ).pipe(
          Stream.flatMap((cursor) =>
            Stream.fromAsyncIterable(cursor, (cause) => cause).pipe(
              Stream.orDieWith((cause) =>
                new Error(`MongoDB scan: ${cause instanceof Error ? cause.message : String(cause)}`)
              )
            )
          ),
          Stream.groupAdjacentBy((commit) => commit.streamId),
          Stream.mapEffect(([streamId, group]) => followChain(streamId, Chunk.toReadonlyArray(group)))
        )

      return {
        /** Every stream, or those after stream `after` in `_id` order: the order in which this scan gives them. */
        streams: (after?: string) => scan(after === undefined ? {} : { _id: { $gt: endOfStream(after) } }),
        /** These streams (one scan of the collection on FerretDB); a stream without commits is not given. */
        streamsOf: (ids: ReadonlyArray<OrderId | string>) => scan({ streamId: { $in: [...ids] } }),
        /** Every outbox marker. */
        outbox: query("outbox", () => outbox.find({}).toArray())
      }
    })
}) {
  /** `MONGODB_URI` (default `mongodb://127.0.0.1:27017/orders`; the database is the URI's path, else `orders`). */
  static readonly layerConfig: Layer.Layer<EventStoreScan, StartupError | ConfigError.ConfigError> = Layer
    .unwrapEffect(Effect.map(connectionConfig, EventStoreScan.Default))
}
