// The rehearsal's stand-in for actions/upload-artifact v7: see action.yml.
import * as fs from "node:fs";
import * as path from "node:path";
import { DefaultArtifactClient } from "@actions/artifact";
import * as core from "@actions/core";
import * as glob from "@actions/glob";

const NO_FILES = ["warn", "error", "ignore"];

function hidden(file, roots) {
  const root = roots.find((r) => file === r || file.startsWith(r + path.sep)) ?? "";
  return path
    .relative(root, file)
    .split(path.sep)
    .some((part) => part.startsWith("."));
}

function commonRoot(files) {
  let root = path.dirname(files[0]);
  for (const file of files) {
    while (!(file.startsWith(root + path.sep) || root === path.parse(root).root)) {
      root = path.dirname(root);
    }
  }
  return root;
}

async function main() {
  const name = core.getInput("name");
  const patterns = core.getInput("path", { required: true });
  const noFiles = core.getInput("if-no-files-found");
  if (!NO_FILES.includes(noFiles)) {
    throw new Error(`if-no-files-found: ${noFiles}: one of ${NO_FILES.join(", ")}`);
  }
  const includeHidden = core.getBooleanInput("include-hidden-files");
  const globber = await glob.create(patterns, { implicitDescendants: true });
  const roots = globber.getSearchPaths().map((p) => path.resolve(p));
  let files = (await globber.glob()).filter((f) => includeHidden || !hidden(f, roots));
  files = files.filter((f) => fs.statSync(f).isFile());
  if (files.length === 0) {
    const message = `no files were found with the provided path: ${patterns}`;
    if (noFiles === "error") throw new Error(message);
    if (noFiles === "warn") core.warning(message);
    else core.info(message);
    return;
  }
  // As upload-artifact: one search path is the root; else the files' common ancestor.
  const single = roots.length === 1 && fs.statSync(roots[0]).isDirectory();
  const root = single ? roots[0] : commonRoot(files);
  const client = new DefaultArtifactClient();
  if (core.getBooleanInput("overwrite")) {
    await client.deleteArtifact(name).catch(() => undefined);
  }
  const options = { compressionLevel: Number(core.getInput("compression-level")) };
  const days = Number(core.getInput("retention-days"));
  if (days > 0) options.retentionDays = days;
  const uploaded = await client.uploadArtifact(name, files, root, options);
  const server = process.env.GITHUB_SERVER_URL ?? "https://github.com";
  const url = `${server}/${process.env.GITHUB_REPOSITORY}/actions/runs/${process.env.GITHUB_RUN_ID}/artifacts/${uploaded.id}`;
  core.info(`artifact ${name}: ${files.length} file(s), ${uploaded.size} bytes, ID ${uploaded.id}`);
  core.setOutput("artifact-id", uploaded.id);
  core.setOutput("artifact-url", url);
  core.setOutput("artifact-digest", uploaded.digest ?? "");
}

main().catch((error) => core.setFailed(error.message));
