// Starts `archspec lsp` (the command in the setting archspec.server.command) for .arch files.
const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function settings() {
  const c = vscode.workspace.getConfiguration("archspec");
  return { variant: c.get("variant"), debounce: c.get("debounce"), inlayHints: c.get("inlayHints") };
}

function activate(context) {
  const [command, ...args] = vscode.workspace.getConfiguration("archspec").get("server.command");
  const server = { command, args, transport: TransportKind.stdio };
  client = new LanguageClient("archspec", "archspec", server, {
    documentSelector: [{ scheme: "file", language: "archspec" }, { scheme: "untitled", language: "archspec" }],
    initializationOptions: settings(),
    synchronize: {
      configurationSection: "archspec",
      // files that specs `use` change on disk: re-analyze the open specs
      fileEvents: vscode.workspace.createFileSystemWatcher("**/*.arch"),
    },
  });
  client.start();
  context.subscriptions.push(client);
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
