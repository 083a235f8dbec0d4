#include "dnn_gating/io/job_meta.h"

#include <nlohmann/json.hpp>

#include "io/json_settings.h"

namespace dnn_gating::train {
namespace {

using json = nlohmann::json;

// One table of settings serves writing, reading and comparing.
template <typename Job, typename Visitor>
void for_each_setting(Job& j, Visitor&& visit) {
  visit("program", j.program);
  visit("dataset", j.dataset);
  visit("data_dir", j.data_dir);
  visit("train_limit", j.train_limit);
  visit("test_limit", j.test_limit);
  visit("image_size", j.image_size);
  visit("bad_images", j.bad_images);
  visit("epochs", j.epochs);
  visit("milestones", j.milestones);
  visit("batch_size", j.batch_size);
  visit("sync_bn", j.sync_bn);
  visit("seed", j.seed);
  visit("lr", j.sgd.lr);
  visit("momentum", j.sgd.momentum);
  visit("weight_decay", j.sgd.weight_decay);
  visit("exempt_thresholds_and_1d", j.sgd.exempt_thresholds_and_1d);
  visit("gating_weight", j.gating_loss.weight);
  visit("gtarget", j.gating_loss.target);
  visit("teacher", j.distillation.teacher);
  visit("teacher_arch", j.distillation.teacher_arch);
  visit("kd_temperature", j.distillation.temperature);
  visit("kd_alpha", j.distillation.alpha);
  visit("save", j.save);
  visit("save_dir", j.save_dir);
  visit("save_every", j.save_every);
  visit("eval_every", j.eval_every);
  visit("metrics", j.metrics_path);
  visit("metrics_csv", j.metrics_csv_path);
  visit("plot", j.plot_path);
  visit("export_pytorch", j.export_pytorch_path);
}

json to_object(const JobConfig& job) {
  json out;
  for_each_setting(job, [&](const char* key, const auto& value) { out[key] = value; });
  out["gating_form"] =
      job.gating_loss.form == layers::GatingLossForm::kNorm ? "norm" : "squared_sum";
  return out;
}

}  // namespace

std::string job_to_json(const JobConfig& job) { return to_object(job).dump(); }

JobConfig job_from_json(const std::string& text, JobConfig job) {
  const json in = json::parse(text);
  for_each_setting(job, [&](const char* key, auto& value) {
    if (!in.contains(key)) return;
    try {
      value = in.at(key).get<std::decay_t<decltype(value)>>();
    } catch (const json::exception&) {
      throw std::runtime_error(std::string("job setting '") + key + "' has the wrong type");
    }
  });
  if (in.contains("gating_form")) {
    job.gating_loss.form = in.at("gating_form") == "norm" ? layers::GatingLossForm::kNorm
                                                          : layers::GatingLossForm::kSquaredSum;
  }
  return job;
}

std::vector<std::string> differing_job_settings(const JobConfig& a, const JobConfig& b) {
  return differing_keys(to_object(a), to_object(b));
}

}  // namespace dnn_gating::train
