// A Node client of the alignment service, as docs/clients.md shows it: @grpc/grpc-js with the
// protos loaded by @grpc/proto-loader, and the google.rpc error details from google-proto-files.
//
//   node client.js ADDRESS PROTOS_DIR ASSESSMENT.json
//
// Sends the assessment (protobuf JSON, as in examples/), then the same one with walking speed
// 12 m/s (outside the valid range), and prints one JSON line: the ranked parameters of the first
// answer, and the status code and BadRequest field violations of the second.
"use strict";

const fs = require("fs");
const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");
const protobuf = require("protobufjs");
const googleProtoFiles = require("google-proto-files");

const [address, protosDir, assessmentFile] = process.argv.slice(2);

const definition = protoLoader.loadSync("prosthetic_alignment/v1/alignment_service.proto", {
  includeDirs: [protosDir],
  enums: String, // enum values as their names, like the protobuf JSON of examples/
  longs: Number,
  defaults: false,
  oneofs: true,
});
const v1 = grpc.loadPackageDefinition(definition).prosthetic_alignment.v1;
const client = new v1.AlignmentService(address, grpc.credentials.createInsecure());

// The error details travel in the `grpc-status-details-bin` trailer as a google.rpc.Status.
const rpcRoot = new protobuf.Root();
rpcRoot.resolvePath = (_origin, target) => path.join(googleProtoFiles.getProtoPath(".."), target);
rpcRoot.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto"]);
const Status = rpcRoot.lookupType("google.rpc.Status");
const BadRequest = rpcRoot.lookupType("google.rpc.BadRequest");

function fieldViolations(err) {
  const raw = err.metadata && err.metadata.get("grpc-status-details-bin")[0];
  if (!raw) return [];
  const status = Status.decode(raw);
  return status.details
    .filter((any) => any.type_url === "type.googleapis.com/google.rpc.BadRequest")
    .flatMap((any) => BadRequest.decode(any.value).fieldViolations)
    .map((v) => ({ field: v.field, description: v.description, reason: v.reason }));
}

function recommend(assessment) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + 10000);
    client.RecommendAdjustments({ assessment }, { deadline }, (err, resp) => (err ? reject(err) : resolve(resp)));
  });
}

async function main() {
  const assessment = JSON.parse(fs.readFileSync(assessmentFile, "utf8"));
  const good = await recommend(assessment);
  const ranked = good.recommendation.adjustments.map((a) => ({
    rank: a.rank,
    parameter: a.parameter,
    change: a.change === "changeDeg" ? a.changeDeg : a.changeMm,
    unit: a.unit,
  }));
  const bad = JSON.parse(JSON.stringify(assessment));
  bad.features.find((f) => f.name === "walking_speed_m_per_s").value = 12;
  let rejected = null;
  try {
    await recommend(bad);
  } catch (err) {
    rejected = { code: grpc.status[err.code], violations: fieldViolations(err) };
  }
  console.log(JSON.stringify({ model: good.recommendation.model.version, ranked, rejected }));
  client.close();
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(1);
});
