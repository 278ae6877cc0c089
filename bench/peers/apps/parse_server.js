// Parse Server for bench/peers/parse.py: one Node process, mounted at /parse, on PARSE_DATABASE_URI.
// Its own defaults otherwise (no allowClientClassCreation: the launcher makes the class with the
// master key; masterKeyIps keep their default, loopback only).
const express = require('express');
const { ParseServer } = require('parse-server');

async function main() {
  const port = Number(process.env.PARSE_PORT);
  const server = new ParseServer({
    databaseURI: process.env.PARSE_DATABASE_URI,
    appId: process.env.PARSE_APP_ID,
    masterKey: process.env.PARSE_MASTER_KEY,
    serverURL: `http://127.0.0.1:${port}/parse`,
    logsFolder: process.env.PARSE_LOGS,
    allowClientClassCreation: false,
  });
  await server.start();
  const app = express();
  app.use('/parse', server.app);
  app.listen(port, '127.0.0.1', () => console.log(`parse-server listening on ${port}`));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
