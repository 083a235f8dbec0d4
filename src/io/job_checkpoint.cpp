#include "dnn_gating/io/job_checkpoint.h"

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <vector>

#include "dnn_gating/io/job_meta.h"
#include "dnn_gating/io/model_meta.h"

namespace dnn_gating::train {
namespace {

nlohmann::json parse_meta(const std::string& path, const std::string& meta_text) {
  try {
    return nlohmann::json::parse(meta_text);
  } catch (const nlohmann::json::exception&) {
    throw std::runtime_error(path + ": the checkpoint's description is not valid JSON");
  }
}

// "flag (setting given, checkpoint saved)" for every explicit setting that
// differs between `given` and `saved` (JSON objects keyed by setting).
std::string conflicts_of(const std::vector<std::string>& differing, const nlohmann::json& given,
                         const nlohmann::json& saved,
                         const std::map<std::string, std::string>& explicit_settings) {
  std::string out;
  for (const auto& setting : differing) {
    const auto it = explicit_settings.find(setting);
    if (it == explicit_settings.end()) continue;
    out += (out.empty() ? "" : ", ") + it->second + " (" + setting + " " +
           given.at(setting).dump() + ", checkpoint " + saved.at(setting).dump() + ")";
  }
  return out;
}

// Applies a self-describing checkpoint's model and dataset to the job (and,
// when `resuming`, every training setting); explicit settings that
// contradict it are an error naming the flags.
JobConfig adopt_checkpoint(const JobConfig& config, const std::string& path,
                           const nlohmann::json& meta, bool resuming) {
  JobConfig out = config;
  if (resuming) {
    out = job_from_json(meta.at("job").dump(), config);
    out.resume_path = config.resume_path;
  }
  if (!meta.contains("model")) return out;
  // How gated layers compute is this run's choice, not the file's.
  out.model = model_from_json(meta.at("model").dump())
                  .skipping(config.model.skipping())
                  .integer(config.model.integer());
  out.dataset = meta.value("dataset", out.dataset);
  // An image folder's model is evaluated at the size it learned, unless asked otherwise.
  if (config.explicit_settings.count("image_size") == 0 && meta.contains("job") &&
      meta.at("job").contains("image_size") && meta.at("job").at("image_size").is_number()) {
    out.image_size = meta.at("job").at("image_size").get<int64_t>();
  }
  // (The saved model with every field, also those an older file lacks.)
  std::string conflicts = conflicts_of(
      differing_fields(config.model, out.model), nlohmann::json::parse(model_to_json(config.model)),
      nlohmann::json::parse(model_to_json(out.model)), config.explicit_settings);
  const nlohmann::json given_job = nlohmann::json::parse(job_to_json(config));
  const nlohmann::json saved_job = nlohmann::json::parse(job_to_json(out));
  std::vector<std::string> differing_job =
      resuming ? differing_job_settings(config, out) : std::vector<std::string>{};
  if (!resuming && out.dataset != config.dataset) differing_job.push_back("dataset");
  const std::string job_conflicts =
      conflicts_of(differing_job, given_job, saved_job, config.explicit_settings);
  if (!job_conflicts.empty()) conflicts += (conflicts.empty() ? "" : ", ") + job_conflicts;
  if (!conflicts.empty()) {
    throw std::invalid_argument(path + ": flags contradict the checkpoint: " + conflicts);
  }
  return out;
}

nlohmann::json describe(const JobConfig& config) {
  nlohmann::json meta;
  meta["program"] = config.program;
  meta["model"] = nlohmann::json::parse(model_to_json(config.model));
  meta["dataset"] = config.dataset;
  meta["job"] = nlohmann::json::parse(job_to_json(config));
  return meta;
}

std::string in_save_dir(const JobConfig& config, const std::string& stem) {
  return (std::filesystem::path(config.save_dir) /
          (stem + "_" + models::network_name(config.model) + ".pt"))
      .string();
}

}  // namespace

std::string checkpoint_file(const JobConfig& config) { return in_save_dir(config, "model"); }

std::string resume_file(const JobConfig& config) { return in_save_dir(config, "resume"); }

JobStart open_job_checkpoint(const JobConfig& requested) {
  JobStart start;
  const bool resuming = !requested.resume_path.empty();
  start.path = resuming ? requested.resume_path : requested.load_path;
  nlohmann::json meta;
  if (!start.path.empty()) {
    start.checkpoint = read_checkpoint(start.path);
    if (!start.checkpoint.meta.empty()) meta = parse_meta(start.path, start.checkpoint.meta);
  }
  if (resuming && !(meta.contains("job") && meta.contains("resume") && start.checkpoint.training)) {
    throw std::runtime_error(start.path +
                             ": not a resumable checkpoint (those are written by --save-every "
                             "and when a run is interrupted); -p starts a new run from weights");
  }
  start.config =
      meta.is_null() ? requested : adopt_checkpoint(requested, start.path, meta, resuming);
  if (resuming) {
    try {
      const nlohmann::json& at = meta.at("resume");
      start.resume = ResumePoint{at.at("epoch").get<int64_t>(), at.at("batch").get<int64_t>(),
                                 at.at("loss_sum").get<double>(), at.at("correct").get<int64_t>()};
      start.history = meta.value("history", std::string());
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error(start.path + ": the checkpoint's resume point is malformed (" +
                               e.what() + ")");
    }
    const ResumePoint& at = *start.resume;
    if (at.epoch < 0 || at.epoch > start.config.epochs || at.batch < 0 || at.correct < 0) {
      throw std::runtime_error(start.path + ": the checkpoint's resume point (epoch " +
                               std::to_string(at.epoch) + ", batch " + std::to_string(at.batch) +
                               ") lies outside its run of " + std::to_string(start.config.epochs) +
                               " epochs");
    }
  }
  return start;
}

std::string final_description(const JobConfig& config, double test_accuracy, double sparsity) {
  nlohmann::json meta = describe(config);
  meta["epochs"] = config.epochs;
  meta["test_accuracy"] = test_accuracy;
  meta["sparsity"] = sparsity;
  return meta.dump();
}

std::string resume_description(const JobConfig& config, const ResumePoint& at,
                               const std::string& history) {
  nlohmann::json meta = describe(config);
  meta["epochs"] = at.epoch;
  meta["resume"] = {
      {"epoch", at.epoch}, {"batch", at.batch}, {"loss_sum", at.loss_sum}, {"correct", at.correct}};
  meta["history"] = history;
  return meta.dump();
}

}  // namespace dnn_gating::train
