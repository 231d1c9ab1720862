// swift-tools-version:6.0
import PackageDescription

/// Only the numeric kernels (Numerics' conversions, the engine's loops) are compiled without
/// bounds and overflow checks in release builds; correctness is covered by the exhaustive tests,
/// which run in debug (checked) mode. Every target that parses untrusted input — JSON, the
/// safetensors header and index, config.json, plans and resume records, tensor names and
/// quantization configs — keeps Swift's checks (`checked`) in release too, so a malformed file
/// can only ever stop the process with a trap, never read out of bounds.
let fast: [SwiftSetting] = [
    .swiftLanguageMode(.v5),
    .unsafeFlags(["-Ounchecked", "-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]
let v5: [SwiftSetting] = [.swiftLanguageMode(.v5)]
let checked = v5

let package = Package(
    name: "dsconvert",
    products: [
        .executable(name: "dsconvert", targets: ["dsconvert"]),
        // The micro-benchmarks behind `make bench` (Scripts/bench.sh), apart from the product.
        .executable(name: "dsconvert-bench", targets: ["dsconvert-bench"]),
        .library(name: "DSConvert", targets: ["Diagnostics", "Tensors", "SafeTensors", "Numerics", "Checkpoint", "Quantization", "Conversion", "Tokenizer", "Sharding"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // The one shape of every error: category, stable code, file, tensor, byte offset, message.
        .target(name: "Diagnostics", swiftSettings: v5),
        // JSON with ordered objects, exact number text and byte offsets in every error.
        .target(name: "JSON", dependencies: ["Diagnostics"], swiftSettings: checked),
        // The one place that talks to POSIX: open, pread, mmap, madvise, write, rename.
        .target(name: "SystemIO", dependencies: ["Diagnostics", "CSystemIO"], swiftSettings: v5),
        // SystemIO's async-signal-safe part: the SIGINT/SIGTERM handler and its fixed table of
        // temporaries (no allocation, no locks; only unlink(2) and _exit(2) in the handler).
        .target(name: "CSystemIO"),
        // Format-neutral tensor types and the two seams every format implements: `TensorStore`
        // (reading, zero-copy) and `TensorFileWriter` / `TensorFileFormat` (writing).
        .target(name: "Tensors", dependencies: ["Diagnostics", "SystemIO"], swiftSettings: v5),
        // The safetensors format: header validation, mmap reader, streaming writer, sharded index.
        .target(name: "SafeTensors", dependencies: ["Diagnostics", "JSON", "SystemIO", "Tensors"], swiftSettings: checked),
        // Element types and bit-exact SIMD conversions (BF16, F16, FP8 E4M3FN/E5M2, INT8).
        .target(name: "Numerics", dependencies: ["Diagnostics", "SystemIO", "CXXHash"], swiftSettings: fast),
        // A model directory as a whole: config, architecture, tensor roles, synthetic checkpoints.
        .target(name: "Checkpoint", dependencies: ["Diagnostics", "JSON", "SafeTensors", "SystemIO", "DSPack"], swiftSettings: checked),
        // The quantizer's hot loops in C, compiled for AVX-512 / AVX2 / baseline and picked at run
        // time (target_clones), bit-identical to the Swift reference in Numerics.
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"])]),
        // Schemes, the per-tensor plan and the quantizer kernels.
        .target(name: "Quantization", dependencies: ["Diagnostics", "JSON", "Numerics", "CKernels", "SafeTensors", "Checkpoint"], swiftSettings: checked),
        // Streaming conversion of whole checkpoints: quantize, dequantize, resume, jobs, merge-index.
        .target(name: "Conversion", dependencies: ["Diagnostics", "JSON", "SystemIO", "SafeTensors", "DSPack", "Numerics", "Checkpoint", "Quantization", "Sharding"], swiftSettings: checked),
        // The CPU engine's matmul, attention and element-wise loops in C (AVX-512 / AVX2 / baseline
        // clones picked at run time), serial; the engine splits the work between threads.
        .target(name: "EngineKernels", cSettings: [.unsafeFlags(["-O3", "-ffp-contract=fast"])]),
        // CPU inference (llama, qwen2, deepseek_v3) on memory-mapped weights in their stored encoding.
        .target(name: "Engine", dependencies: ["Diagnostics", "JSON", "SystemIO", "Numerics", "Tensors", "SafeTensors", "Checkpoint", "Quantization", "EngineKernels"], swiftSettings: fast),
        // Tensor/pipeline/expert-parallel split rules: which dim each tensor splits, PP stages, EP placement.
        .target(name: "Sharding", dependencies: ["Diagnostics"], swiftSettings: checked),
        // Byte-level BPE from a Hugging Face tokenizer.json, with the ids of the `tokenizers` package.
        .target(name: "Tokenizer", dependencies: ["Diagnostics", "JSON", "SystemIO"], swiftSettings: checked),
        // dsconvert eval's statistics: per-token KL / top-1 / log-likelihoods from logits, the
        // summaries llama.cpp's perplexity reports (Sources/Eval).
        .target(name: "Eval", dependencies: ["Diagnostics", "JSON", "SystemIO", "Checkpoint", "Engine", "EngineKernels", "Tokenizer"], swiftSettings: v5),
        // The .dspack format (Formats/dspack.md): a checksummed, 4096-aligned single-file pack.
        .target(name: "DSPack", dependencies: ["Diagnostics", "JSON", "SystemIO", "Tensors", "Numerics", "CCrypto", "CZstd"], swiftSettings: checked),
        // Debian's libxxhash-dev (XXH3-64, XXH64) and OpenSSL libcrypto (SHA-256).
        .systemLibrary(name: "CXXHash", pkgConfig: "libxxhash", providers: [.apt(["libxxhash-dev"])]),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // Debian's libzstd-dev: the multi-threaded compression of the .dspack.zst transport file.
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        // |x| histograms of linear-layer inputs and the amax searches (KL, percentile, min-max):
        // Formats/calibration.md.
        .target(name: "Calibration", dependencies: ["Diagnostics", "JSON", "SystemIO", "Numerics"], swiftSettings: fast),
        // `dsconvert calibrate`'s pass: the engine's observer filling those histograms window by
        // window over a tokenized text.
        .target(name: "CalibrationRun", dependencies: ["Calibration", "Checkpoint", "Diagnostics", "Engine", "Eval", "Numerics", "SystemIO", "Tensors"], swiftSettings: fast),
        .executableTarget(
            name: "dsconvert",
            dependencies: [
                "Tokenizer", "DSPack", "Eval", "Calibration", "CalibrationRun",
                "Diagnostics", "JSON", "SystemIO", "SafeTensors", "Numerics", "Checkpoint", "Quantization", "Conversion", "Engine", "Tensors", "Sharding",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: v5),
        // `dsconvert-bench kernel | read`: the micro-benchmarks Scripts/bench.sh runs.
        .executableTarget(
            name: "dsconvert-bench",
            dependencies: [
                "SystemIO", "JSON", "Numerics", "Tensors", "Quantization", "Checkpoint", "Engine", "Eval", "Calibration", "CalibrationRun",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/Bench",
            swiftSettings: v5),
        // Shared by the test targets: temp dirs, running the Python references.
        .target(name: "TestSupport", dependencies: ["SafeTensors", "JSON", "SystemIO", "Numerics"], path: "Tests/TestSupport", swiftSettings: v5),
        .testTarget(name: "CalibrationTests", dependencies: ["Calibration", "Numerics", "TestSupport"], swiftSettings: v5),
        .testTarget(name: "JSONTests", dependencies: ["JSON", "Diagnostics"], swiftSettings: v5),
        // Test helper: holds registered temporaries and waits for signals (InterruptTests).
        .executableTarget(name: "InterruptProbe", dependencies: ["SystemIO"], path: "Tests/InterruptProbe", swiftSettings: v5),
        .testTarget(name: "SystemIOTests", dependencies: ["SystemIO", "Diagnostics", "TestSupport"], swiftSettings: v5),
        .testTarget(name: "SafeTensorsTests", dependencies: ["Diagnostics", "SafeTensors", "JSON", "SystemIO", "TestSupport"], swiftSettings: v5),
        .testTarget(name: "NumericsTests", dependencies: ["Numerics", "TestSupport"], swiftSettings: v5),
        .testTarget(name: "CheckpointTests", dependencies: ["Diagnostics", "Checkpoint", "SafeTensors", "JSON", "TestSupport"], swiftSettings: v5),
        .testTarget(name: "EngineTests", dependencies: ["Conversion", "Engine", "EngineKernels", "Checkpoint", "SafeTensors", "Tensors", "Quantization", "JSON", "TestSupport"], swiftSettings: v5),
        .testTarget(name: "TokenizerTests", dependencies: ["Tokenizer", "Diagnostics", "JSON", "TestSupport"], swiftSettings: v5),
        .testTarget(name: "EvalTests", dependencies: ["Eval", "Engine", "Checkpoint", "Tokenizer", "TestSupport"], swiftSettings: v5),
        .testTarget(name: "DSPackTests", dependencies: ["DSPack", "Conversion", "Checkpoint", "Quantization", "Numerics", "JSON", "SystemIO", "TestSupport"], swiftSettings: v5),
        .testTarget(name: "ShardingTests", dependencies: ["Sharding", "Diagnostics"], swiftSettings: v5),
        .testTarget(name: "ConversionTests", dependencies: ["Calibration", "Tokenizer", "dsconvert", "Sharding", "Diagnostics", "Conversion", "Quantization", "Checkpoint", "SafeTensors", "Numerics", "CKernels", "SystemIO", "JSON", "TestSupport"], swiftSettings: v5),
    ]
)
