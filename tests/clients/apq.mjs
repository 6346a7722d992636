// Automatic persisted queries as two third-party clients speak them, against served processes
// (tests/integration/test_client_libraries.py runs this):
//
//   node apq.mjs <base URL, APQ on> <base URL, trusted documents on>
//
// Apollo Client 4 with createPersistedQueryLink({ useGETForHashedQueries: true }) and urql
// with persistedExchange({ preferGetForPersistedQueries: true }), each as the README shows it.
// Each runs one query twice on the first server (a miss, the retry with the full query, then
// a hit by hash alone), and one unregistered query on the second. Prints one JSON object: per
// client, every request its fetch sent (method, whether it carried the query and the hash, the
// status), the hash it sent, the data of both runs, and the refusal as the client surfaced it.

import { createHash } from "node:crypto";

import { ApolloClient, CombinedGraphQLErrors, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { createPersistedQueryLink } from "@apollo/client/link/persisted-queries";
import { Client, fetchExchange } from "@urql/core";
import { persistedExchange } from "@urql/exchange-persisted";

const [apqBase, trustedBase] = process.argv.slice(2);
if (!apqBase || !trustedBase) {
  console.error("usage: node apq.mjs <APQ server base URL> <trusted server base URL>");
  process.exit(2);
}

// Distinct documents, so that each client's first request is a miss.
const APOLLO_QUERY = gql`
  query ApolloProbe {
    publicTimeline(first: 1) {
      edges {
        cursor
      }
    }
  }
`;
const URQL_QUERY = "query UrqlProbe { viewer { id } }";
const UNREGISTERED = "query Unregistered { viewer { id } }";

/** A fetch that records what each request carried and how it was answered. */
function recording() {
  const requests = [];
  const hashes = new Set();
  const record = async (input, init = {}) => {
    const url = new URL(typeof input === "string" ? input : input.url);
    const method = (init.method ?? "GET").toUpperCase();
    let params;
    if (method === "GET") {
      const extensions = url.searchParams.get("extensions");
      params = {
        query: url.searchParams.get("query"),
        extensions: extensions ? JSON.parse(extensions) : null,
      };
    } else {
      params = JSON.parse(init.body);
    }
    const hash = params.extensions?.persistedQuery?.sha256Hash ?? null;
    if (hash) hashes.add(hash);
    const response = await fetch(input, init);
    requests.push({ method, query: Boolean(params.query), hash: Boolean(hash), status: response.status });
    return response;
  };
  return { record, requests, hashes };
}

function apollo(uri, fetch) {
  return new ApolloClient({
    cache: new InMemoryCache(),
    link: createPersistedQueryLink({
      sha256: (text) => createHash("sha256").update(text).digest("hex"),
      useGETForHashedQueries: true,
    }).concat(new HttpLink({ uri, fetch })),
  });
}

function urql(url, fetch) {
  return new Client({
    url,
    fetch,
    requestPolicy: "network-only",
    exchanges: [persistedExchange({ preferGetForPersistedQueries: true }), fetchExchange],
  });
}

function refusal(error) {
  const errors = CombinedGraphQLErrors.is(error) ? error.errors : (error?.graphQLErrors ?? []);
  return errors.map((e) => ({ message: e.message, code: e.extensions?.code ?? null }));
}

async function apolloRuns() {
  const { record, requests, hashes } = recording();
  const client = apollo(`${apqBase}/graphql`, record);
  const first = await client.query({ query: APOLLO_QUERY, fetchPolicy: "network-only" });
  const second = await client.query({ query: APOLLO_QUERY, fetchPolicy: "network-only" });
  const trusted = recording();
  let refused = null;
  try {
    await apollo(`${trustedBase}/graphql`, trusted.record).query({
      query: gql(UNREGISTERED),
      fetchPolicy: "network-only",
    });
  } catch (error) {
    refused = refusal(error);
  }
  return {
    hashes: [...hashes],
    requests,
    data: [first.data, second.data],
    trusted: { requests: trusted.requests, refused },
  };
}

async function urqlRuns() {
  const { record, requests, hashes } = recording();
  const client = urql(`${apqBase}/graphql`, record);
  const first = await client.query(URQL_QUERY, {}).toPromise();
  const second = await client.query(URQL_QUERY, {}).toPromise();
  const trusted = recording();
  const result = await urql(`${trustedBase}/graphql`, trusted.record)
    .query(UNREGISTERED, {})
    .toPromise();
  return {
    hashes: [...hashes],
    requests,
    data: [first.data ?? null, second.data ?? null],
    errors: [first.error?.message ?? null, second.error?.message ?? null],
    trusted: { requests: trusted.requests, refused: result.error ? refusal(result.error) : null },
  };
}

console.log(JSON.stringify({ apollo: await apolloRuns(), urql: await urqlRuns() }));
