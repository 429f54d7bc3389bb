/**
 * The paths the server answers and their methods, for decisions taken around
 * the router: which methods a path allows (a 405's `Allow`), and whether a
 * request is one of the API's operations (which the tokens guard).
 */
import { ConsolePaths } from "./Console.js"
import { DocumentPaths, OrdersApi } from "./OrdersApi.js"

interface Route {
  readonly method: string
  readonly path: string
  readonly segments: ReadonlyArray<string>
}

const route = (method: string, path: string): Route => ({ method, path, segments: path.split("/") })

/** The API's operations, path parameters as `:name` segments. */
const operations: ReadonlyArray<Route> = Object.values(OrdersApi.groups).flatMap((group) =>
  Object.values(group.endpoints).map((endpoint) => route(endpoint.method, endpoint.path))
)

/** The documents and the console's paths, which answer GET only. */
const documents: ReadonlyArray<Route> = [...Object.values(DocumentPaths), ...ConsolePaths].map((path) =>
  route("GET", path)
)

const matches = (candidate: Route, segments: ReadonlyArray<string>) =>
  candidate.segments.length === segments.length &&
  candidate.segments.every((segment, i) => segment.startsWith(":") ? segments[i] !== "" : segment === segments[i])

/** The methods `pathname` has (HEAD wherever GET, as the router answers it); none for an unknown path. */
export const allowedMethods = (pathname: string): ReadonlyArray<string> => {
  const segments = pathname.split("/")
  const methods = new Set([...operations, ...documents].filter((r) => matches(r, segments)).map((r) => r.method))
  if (methods.has("GET")) methods.add("HEAD")
  return [...methods]
}

/** The declared path (`/:id/events`) that `pathname` matches, the documents first; none for an unknown path. */
export const routeOf = (pathname: string): string | undefined => {
  const segments = pathname.split("/")
  return [...documents, ...operations].find((candidate) => matches(candidate, segments))?.path
}

/** Whether `METHOD pathname` reaches one of the API's operations: the documents take precedence over `/:id`. */
export const isOperation = (method: string, pathname: string): boolean => {
  const segments = pathname.split("/")
  return !documents.some((document) => matches(document, segments)) &&
    operations.some((operation) => operation.method === method && matches(operation, segments))
}
