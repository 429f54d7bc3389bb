// @ts-check
/**
 * The console's calls to the Orders API, on this page's own origin, with the
 * user's bearer token when one is set. A refusal is an RFC 9457 problem
 * document: it becomes a `Problem` in the API's own words.
 */

/**
 * An order as the read model (or `?at=`) has it. Other fields (a failed
 * order's reason) are shown as they come, whatever their name and shape.
 * @typedef {{ id: string, name: string, status: string, version: number } & Record<string, unknown>} Order
 */

/**
 * An event as the event store has it. `data` is shown as JSON, whatever its shape.
 * @typedef {{
 *   eventId: string,
 *   version: number,
 *   type: string,
 *   occurredAt: string,
 *   metadata: { correlationId: string, causationId: string },
 *   data: unknown
 * }} OrderEvent
 */

/**
 * The lag figures of `GET /console/lag` (documented in src/Console.ts).
 * @typedef {{
 *   instance: string,
 *   outbox: { entries: number, oldestAgeSeconds: number } | null,
 *   projection: { events: number, totalSeconds: number, maxSeconds: number } | null,
 *   consumer: { messages: number, partitions: number } | null
 * }} LagFigures
 */

/** @typedef {{ path: ReadonlyArray<string | number>, message: string }} Issue */

/** A call the API refused (or that got no answer: status 0), as the API words it. */
export class Problem extends Error {
  /**
   * @param {number} status
   * @param {string} title
   * @param {string} detail
   * @param {ReadonlyArray<Issue>} issues
   */
  constructor(status, title, detail, issues = []) {
    super(`${title}: ${detail}`)
    this.status = status
    this.title = title
    this.detail = detail
    this.issues = issues
  }
}

const tokenKey = "orders-console.token"

/** The token lives in this tab's session storage: gone when the tab closes, never sent to another origin. */
export const storedToken = () => sessionStorage.getItem(tokenKey) ?? ""

/** @param {string} token */
export const storeToken = (token) => {
  if (token === "") sessionStorage.removeItem(tokenKey)
  else sessionStorage.setItem(tokenKey, token)
}

/** A call answers within this, or fails: a hung call would stall the page's refreshing. */
const callTimeoutMs = 10_000

/**
 * @param {number} status
 * @param {unknown} body
 */
const problemOf = (status, body) => {
  if (typeof body === "object" && body !== null && "title" in body && "detail" in body) {
    const { detail, issues, title } = /** @type {{ title: unknown, detail: unknown, issues?: unknown }} */ (body)
    return new Problem(status, String(title), String(detail), Array.isArray(issues) ? issues : [])
  }
  return new Problem(status, `HTTP ${status}`, "the server answered without a problem document")
}

/**
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<unknown>}
 */
const call = async (method, path, body) => {
  /** @type {Record<string, string>} */
  const headers = { accept: "application/json" }
  const token = storedToken()
  if (token !== "") headers.authorization = `Bearer ${token}`
  if (body !== undefined) headers["content-type"] = "application/json"
  /** @type {Response} */
  let response
  let text
  try {
    response = await fetch(path, {
      method,
      headers,
      cache: "no-store",
      signal: AbortSignal.timeout(callTimeoutMs),
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })
    text = await response.text()
  } catch (error) {
    throw new Problem(0, "No answer", `the server did not answer: ${error instanceof Error ? error.message : error}`)
  }
  let parsed
  try {
    parsed = text === "" ? undefined : JSON.parse(text)
  } catch {
    throw new Problem(response.status, `HTTP ${response.status}`, "the server answered with something else than JSON")
  }
  if (!response.ok) throw problemOf(response.status, parsed)
  return parsed
}

/** @param {string} id */
const orderPath = (id) => `/${encodeURIComponent(id)}`

/**
 * A page of the read model, sorted by id.
 * @param {number} limit
 * @param {string | undefined} after
 */
export const listOrders = (limit, after) => /** @type {Promise<Array<Order>>} */ (
  call("GET", `/?${new URLSearchParams({ limit: String(limit), ...(after === undefined ? {} : { after }) })}`)
)

/**
 * The order as the read model has it, or, with `at`, as it was after that version (folded from the event store).
 * @param {string} id
 * @param {number} [at]
 */
export const getOrder = (
  id,
  at
) => /** @type {Promise<Order>} */ (call("GET", at === undefined ? orderPath(id) : `${orderPath(id)}?at=${at}`))

/** An order has a handful of events: the first page of this many is all of them. */
export const EventPageSize = 100

/** @param {string} id */
export const orderEvents = (
  id
) => /** @type {Promise<Array<OrderEvent>>} */ (call("GET", `${orderPath(id)}/events?limit=${EventPageSize}`))

/**
 * @param {string} id
 * @param {string} name
 */
export const createOrder = (id, name) => /** @type {Promise<Order>} */ (call("POST", "/", { id, name }))

/** @param {string} id */
export const requestProcessing = (id) => /** @type {Promise<Order>} */ (call("POST", orderPath(id)))

export const lagFigures = () => /** @type {Promise<LagFigures>} */ (call("GET", "/console/lag"))
