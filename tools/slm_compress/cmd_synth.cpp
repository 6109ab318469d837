// slm-compress synth: writes the deterministic synthetic Llama-shaped model (the built-in default
// input of `make demo`) as model.safetensors + config.json.
#include <iostream>

#include "commands.hpp"
#include "common.hpp"
#include "slmc/convert/synthetic.hpp"
#include "slmc/io/output.hpp"

namespace slmc::cli {

Command add_synth(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  auto force = std::make_shared<bool>(false);
  auto cfg = std::make_shared<SyntheticLlamaConfig>();
  CLI::App* sub = app.add_subcommand("synth", "Write a deterministic synthetic Llama-shaped model (safetensors + "
                                             "config.json) with heavy-tailed weights and outlier channels");
  sub->add_option("-o,--output", *dir, "Output directory")->required();
  sub->add_option("--dim", cfg->dim, "Embedding width")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--hidden", cfg->hidden_dim, "Feed-forward width")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--layers", cfg->layers, "Transformer blocks")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--heads", cfg->heads, "Attention heads")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--kv-heads", cfg->kv_heads, "Key/value heads")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--vocab", cfg->vocab, "Vocabulary size")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--seed", cfg->seed, "Random seed")->capture_default_str();
  sub->add_option("--arch", cfg->arch, "Model family: llama, mistral, qwen2 (q/k/v biases)")->capture_default_str();
  sub->add_option("--context", cfg->context, "Context length")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--rope-theta", cfg->rope_theta, "RoPE base")->capture_default_str();
  sub->add_option("--rope-scaling", cfg->rope_scaling_factor,
                  "Llama-3 RoPE scaling factor (0: none; original context = context / 4)")->capture_default_str();
  auto* untied = sub->add_flag_function("--untied", [cfg](int64_t) { cfg->tied = false; },
                                        "A separate lm_head.weight instead of the tied embedding");
  (void)untied;
  sub->add_flag("--force", *force, "Replace an existing output directory (or a link, device, ...) at -o");
  return {sub, [dir, cfg, force]() -> int {
            // Like export --format hf: an existing entry at -o is refused unless --force, then
            // replaced by rename, never written into or through.
            if (Status s = check_output_path(*dir, {}, OutputKind::kDirectory, *force); !s.ok()) {
              return fail_usage(s.message());
            }
            auto out = AtomicDirectory::create(*dir, *force);
            if (!out.ok()) return fail(out.status());
            Status s = write_synthetic_llama(out->path(), *cfg);
            if (s.ok()) s = out->commit();
            if (!s.ok()) return fail(s);
            std::cout << "wrote " << *dir << "/model.safetensors and config.json (dim " << cfg->dim << ", "
                      << cfg->layers << " layers, vocab " << cfg->vocab << ", seed " << cfg->seed << ")\n";
            return kExitOk;
          }};
}

}  // namespace slmc::cli
