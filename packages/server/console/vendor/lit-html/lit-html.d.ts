// The types of the lit-html build the server serves at this path (see src/Console.ts).
export * from "lit-html"
