using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Threading;
using System.Threading.Tasks;
using InitramfsPS.Cache;
using InitramfsPS.Errors;
using InitramfsPS.Images;
using InitramfsPS.Import;
using InitramfsPS.Layers;
using InitramfsPS.RootFilesystem;
using SharpFuzz;

namespace InitramfsPS.Fuzz
{
    /// <summary>
    /// A seeded, coverage-blind mutation fuzzer for the readers of untrusted input: tar layers (plain,
    /// gzip, zstd), cpio archives (Import-Initramfs), manifests, indexes, image configs, digests and
    /// references. It is not afl++: it does not see coverage, it only mutates generated seeds
    /// (bit flips, interesting bytes, inserts, deletes, truncation, duplicated chunks, splices, tokens,
    /// and edits of tar octal / cpio hex length fields) deterministically from --seed, for --seconds or
    /// --iterations. An InitramfsException is the expected outcome of a bad input (for compressed layers
    /// also the decompressor's own data errors, which ImageExpander maps to LayerCorrupt); any other
    /// exception is a crash, and an input that runs longer than --timeout-ms is a hang. Each new crash
    /// (by exception type and top frame) is saved to --crashes as &lt;target&gt;-&lt;hash&gt;.bin with a .txt
    /// beside it; --replay DIR (or FILE) runs saved inputs again (the regression corpus).
    ///
    /// The coverage-guided mode is --afl TARGET: the same readers under afl-fuzz through SharpFuzz's
    /// fork server (InitramfsPS.Core.dll instrumented by the sharpfuzz tool; tools/fuzz/Invoke-AflFuzz.ps1
    /// drives it). --seeds DIR writes the generated seeds of --target there, for afl-fuzz -i.
    ///
    /// Usage: InitramfsPS.Fuzz [--seconds N] [--iterations N] [--seed N] [--timeout-ms N]
    ///                         [--target tar,gzip,...] [--crashes DIR] | --replay DIR
    ///                         | --afl TARGET | --seeds DIR --target TARGET
    /// Exit code: 0 clean, 1 crashes found (or a replayed input still crashes), 2 a hang.
    /// </summary>
    internal static class Program
    {
        private static readonly string[] AllTargets = { "tar", "gzip", "zstd", "cpio", "manifest", "index", "config", "digest", "reference" };
        private static string workDir = string.Empty;

        /// <summary>
        /// A test hook, not a reader: its input goes to the reference parser and then crashes (an
        /// InvalidOperationException) when it holds a byte of 0x80 or more. Tests run it to show that
        /// a crash fails the replay and the afl run; it is never fuzzed unless named.
        /// </summary>
        private const string SelfTest = "selftest";

        private static bool IsTarget(string target) => AllTargets.Contains(target) || target == SelfTest;

        private static int Main(string[] args)
        {
            double seconds = 30;
            long iterations = long.MaxValue;
            int seed = 1;
            int timeoutMs = 5000;
            string? crashes = null;
            string? replay = null;
            string? afl = null;
            string? seedsDir = null;
            string[] targets = AllTargets;
            for (int i = 0; i < args.Length; i++)
            {
                string a = args[i];
                string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{a} needs a value");
                switch (a)
                {
                    case "--seconds": seconds = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--iterations": iterations = long.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--seed": seed = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--timeout-ms": timeoutMs = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--crashes": crashes = Next(); break;
                    case "--replay": replay = Next(); break;
                    case "--afl": afl = Next(); break;
                    case "--seeds": seedsDir = Next(); break;
                    case "--target": targets = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries); break;
                    default:
                        Console.Error.WriteLine($"unknown argument '{a}'");
                        return 64;
                }
            }
            foreach (string t in afl is null ? targets : new[] { afl })
            {
                if (!IsTarget(t))
                {
                    Console.Error.WriteLine($"unknown target '{t}': use {string.Join(", ", AllTargets)} (or {SelfTest})");
                    return 64;
                }
            }
            if (seedsDir is not null)
            {
                return WriteSeeds(seedsDir, targets);
            }
            if (afl is not null)
            {
                Afl(afl);
                return 0;
            }
            GiveTraceBuffer();
            workDir = Path.Combine(Path.GetTempPath(), "initramfsps-fuzz-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
            Directory.CreateDirectory(workDir);
            try
            {
                return replay is not null ? Replay(replay, timeoutMs) : Fuzz(targets, seed, seconds, iterations, timeoutMs, crashes);
            }
            finally
            {
                try { Directory.Delete(workDir, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            }
        }

        /// <summary>Runs the saved inputs in a folder (or one file), each named &lt;target&gt;-*.bin, again.</summary>
        private static int Replay(string path, int timeoutMs)
        {
            int failed = 0, ran = 0;
            var files = File.Exists(path) ? new[] { path }
                : Directory.Exists(path) ? Directory.GetFiles(path, "*.bin").OrderBy(f => f, StringComparer.Ordinal).ToArray()
                : Array.Empty<string>();
            foreach (string file in files)
            {
                string name = Path.GetFileName(file);
                string target = name.Split('-')[0];
                if (!IsTarget(target))
                {
                    continue;
                }
                ran++;
                var outcome = RunOne(target, File.ReadAllBytes(file), timeoutMs);
                if (outcome.Kind is OutcomeKind.Crash or OutcomeKind.Hang)
                {
                    failed++;
                    // The first line is what tools/fuzz/Invoke-AflFuzz.ps1 reads: kind and signature.
                    Console.WriteLine($"REPLAY FAIL {name}: {outcome.Kind} {outcome.Signature}");
                    Console.WriteLine(outcome.Error);
                }
            }
            Console.WriteLine($"replay: {ran} inputs, {failed} failing");
            return failed == 0 ? 0 : 1;
        }

        /// <summary>
        /// Runs one target under afl-fuzz. SharpFuzz's out-of-process fork server starts this program
        /// again as its child, which reads each input from stdin and reports an exception that escapes
        /// as a crash; a refusal the module expects is caught here, so only the others escape. Out of
        /// process, because afl-fuzz kills a child that runs past -t: the server survives and starts a
        /// new one. Without afl-fuzz (no __AFL_SHM_ID) the target runs once on stdin.
        /// </summary>
        private static void Afl(string target)
        {
            // One folder per target, shared by the fork server's children, which are killed, not
            // ended: the cpio target deletes what it writes inside it after each input.
            workDir = Path.Combine(Path.GetTempPath(), "initramfsps-afl-" + target);
            Directory.CreateDirectory(workDir);
            Fuzzer.OutOfProcess.Run(stream =>
            {
                using var buffer = new MemoryStream();
                stream.CopyTo(buffer);
                try
                {
                    Targets.Run(target, buffer.ToArray(), workDir, CancellationToken.None);
                }
                catch (Exception ex) when (Targets.IsExpected(target, ex))
                {
                }
            });
        }

        /// <summary>
        /// In a build whose InitramfsPS.Core.dll the sharpfuzz tool instrumented, every branch writes to
        /// SharpFuzz's trace map, which only afl-fuzz (through Fuzzer.Run) provides: a scratch map lets
        /// the same build check seeds and replay crashes outside afl-fuzz. Harmless when not instrumented.
        /// </summary>
        private static unsafe void GiveTraceBuffer()
        {
            if (SharpFuzz.Common.Trace.SharedMem == null)
            {
                SharpFuzz.Common.Trace.SharedMem = (byte*)System.Runtime.InteropServices.NativeMemory.AllocZeroed(1 << 16);
            }
        }

        /// <summary>Writes the generated seeds of each target as &lt;target&gt;-seed-NN.bin, the names --replay reads.</summary>
        private static int WriteSeeds(string dir, string[] targets)
        {
            Directory.CreateDirectory(dir);
            foreach (string target in targets)
            {
                var list = Seeds.For(target);
                for (int i = 0; i < list.Count; i++)
                {
                    File.WriteAllBytes(Path.Combine(dir, $"{target}-seed-{i:D2}.bin"), list[i]);
                }
                Console.WriteLine($"seeds: {list.Count} for {target} in {dir}");
            }
            return 0;
        }

        private static int Fuzz(string[] targets, int seed, double seconds, long iterations, int timeoutMs, string? crashes)
        {
            var rng = new Random(seed);
            var seeds = targets.ToDictionary(t => t, t => Seeds.For(t), StringComparer.Ordinal);
            var signatures = new HashSet<string>(StringComparer.Ordinal);
            var counts = targets.ToDictionary(t => t, _ => 0L, StringComparer.Ordinal);
            long total = 0, expected = 0;
            int crashCount = 0;
            var clock = Stopwatch.StartNew();
            // every seed must pass unmutated: a seed that fails is a harness bug or a real one
            foreach (var (t, list) in seeds)
            {
                foreach (var s in list)
                {
                    var o = RunOne(t, s, timeoutMs);
                    if (o.Kind is OutcomeKind.Crash or OutcomeKind.Hang)
                    {
                        crashCount += Record(t, s, o, signatures, crashes);
                    }
                }
            }
            while (total < iterations && clock.Elapsed.TotalSeconds < seconds)
            {
                string target = targets[(int)(total % targets.Length)];
                var list = seeds[target];
                byte[] input = Mutator.Mutate(target, list[rng.Next(list.Count)], list, rng);
                total++;
                counts[target]++;
                var outcome = RunOne(target, input, timeoutMs);
                if (outcome.Kind == OutcomeKind.Expected)
                {
                    expected++;
                }
                else if (outcome.Kind != OutcomeKind.Ok)
                {
                    crashCount += Record(target, input, outcome, signatures, crashes);
                    if (outcome.Kind == OutcomeKind.Hang)
                    {
                        Console.WriteLine($"fuzz: stopped at a hang after {total} inputs");
                        Console.Out.Flush();
                        Environment.Exit(2);
                    }
                }
            }
            Console.WriteLine($"fuzz: seed {seed}, {total} inputs in {clock.Elapsed.TotalSeconds:F1} s ({string.Join(", ", counts.Select(kv => $"{kv.Key} {kv.Value}"))}), {expected} refused as expected, {crashCount} new crash signatures, 0 hangs");
            return crashCount == 0 ? 0 : 1;
        }

        private static int Record(string target, byte[] input, Outcome outcome, HashSet<string> signatures, string? crashes)
        {
            string signature = target + "|" + outcome.Signature;
            if (!signatures.Add(signature))
            {
                return 0;
            }
            string hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(signature))).ToLowerInvariant()[..12];
            Console.WriteLine($"CRASH {target}-{hash}: {outcome.Kind} {outcome.Error}");
            if (crashes is not null)
            {
                Directory.CreateDirectory(crashes);
                File.WriteAllBytes(Path.Combine(crashes, $"{target}-{hash}.bin"), input);
                File.WriteAllText(Path.Combine(crashes, $"{target}-{hash}.txt"), $"{outcome.Kind}\n{outcome.Error}\n");
            }
            return 1;
        }

        private enum OutcomeKind { Ok, Expected, Crash, Hang }

        private sealed record Outcome(OutcomeKind Kind, string Signature, string Error);

        private static Outcome RunOne(string target, byte[] input, int timeoutMs)
        {
            using var cts = new CancellationTokenSource();
            Exception? caught = null;
            var thread = new Thread(() =>
            {
                try
                {
                    Targets.Run(target, input, workDir, cts.Token);
                }
                catch (Exception ex)
                {
                    caught = ex;
                }
            }, 16 << 20) { IsBackground = true };
            thread.Start();
            if (!thread.Join(timeoutMs))
            {
                cts.Cancel();
                return new Outcome(OutcomeKind.Hang, "hang", $"no result after {timeoutMs} ms");
            }
            if (caught is null)
            {
                return new Outcome(OutcomeKind.Ok, string.Empty, string.Empty);
            }
            if (Targets.IsExpected(target, caught))
            {
                return new Outcome(OutcomeKind.Expected, string.Empty, string.Empty);
            }
            string frame = new StackTrace(caught, false).GetFrames().Select(f => f.GetMethod()).Where(m => m is not null)
                .Select(m => m!.DeclaringType?.FullName + "." + m.Name).FirstOrDefault(n => n.StartsWith("InitramfsPS.", StringComparison.Ordinal)) ?? "?";
            return new Outcome(OutcomeKind.Crash, caught.GetType().FullName + "@" + frame, caught.ToString());
        }
    }

    /// <summary>Feeds one input to one reader, the way the module does.</summary>
    internal static class Targets
    {
        private const long Limit = 64L << 20;

        public static bool IsExpected(string target, Exception ex) =>
            ex is InitramfsException
            || (target is "gzip" or "zstd" && (ex is InvalidDataException || ex is EndOfStreamException || ex is ZstdSharp.ZstdException));

        public static void Run(string target, byte[] input, string work, CancellationToken cancellationToken)
        {
            switch (target)
            {
                case "tar":
                    ApplyTar(new MemoryStream(input, false), input.Length, cancellationToken);
                    break;
                case "gzip":
                case "zstd":
                    Unpack(input, target == "gzip" ? LayerCompression.Gzip : LayerCompression.Zstd, work, cancellationToken);
                    break;
                case "cpio":
                    string dir = Path.Combine(work, Guid.NewGuid().ToString("N"));
                    Directory.CreateDirectory(dir);
                    try
                    {
                        string path = Path.Combine(dir, "input.cpio");
                        File.WriteAllBytes(path, input);
                        var result = InitramfsImporter.Import(path, new BlobStore(Path.Combine(dir, "cache")), new ImportOptions { MaxUncompressedSize = Limit, MaxEntries = 100_000 }, cancellationToken);
                        foreach (var e in result.Rootfs.GetEntries())
                        {
                            _ = e.Path;
                        }
                    }
                    finally
                    {
                        Directory.Delete(dir, true);
                    }
                    break;
                case "manifest":
                    // The JSON an image is made of: read as a manifest or index and, whether or not
                    // that refused it, as an image config too.
                    try
                    {
                        Document(input);
                    }
                    catch (InitramfsException)
                    {
                    }
                    Config(input);
                    break;
                case "index":
                    var list = LayoutResolver.ParseIndex(input, "fuzz index");
                    if (list.Count > 0)
                    {
                        LayoutResolver.PickPlatform(list, Platform.Parse("linux/arm64/v8"), "fuzz");
                    }
                    break;
                case "config":
                    Config(input);
                    break;
                case "digest":
                    Digest.Parse(Encoding.UTF8.GetString(input));
                    break;
                case "reference":
                    ImageReference.Parse(Encoding.UTF8.GetString(input)).ToString();
                    break;
                case "selftest":
                    // A reader first, so that afl-fuzz sees instrumented branches; then the hook.
                    try
                    {
                        ImageReference.Parse(Encoding.UTF8.GetString(input));
                    }
                    catch (InitramfsException)
                    {
                    }
                    if (input.Any(b => b >= 0x80))
                    {
                        throw new InvalidOperationException("selftest: an input with a byte of 0x80 or more (the test hook's crash)");
                    }
                    break;
                default:
                    throw new ArgumentException($"unknown target {target}");
            }
        }

        private static void Document(byte[] input)
        {
            var descriptor = new Descriptor(null, Digest.Compute("sha256", input), input.Length);
            var doc = LayoutResolver.ParseDocument(input, descriptor);
            if (doc.Index is { Count: > 0 } entries)
            {
                LayoutResolver.PickPlatform(entries, Platform.Default, "fuzz");
            }
        }

        private static void Config(byte[] input)
        {
            using var json = LayoutResolver.Parse(input, "fuzz config");
            var config = ImageConfig.Parse(json.RootElement);
            _ = config.Command;
        }

        /// <summary>A compressed layer through the module's own unpacker: its three threads, the cache write and the tar parse.</summary>
        private static void Unpack(byte[] input, LayerCompression compression, string work, CancellationToken cancellationToken)
        {
            string dir = Path.Combine(work, Guid.NewGuid().ToString("N"));
            try
            {
                var layer = new ParsedLayer { BackingPath = "/nonexistent/layer.tar", BackingLength = input.Length };
                using var unpacked = LayerUnpacker.Unpack(new MemoryStream(input, false), compression, Digest.Compute("sha256", input), new BlobStore(dir),
                    Limit, limit => new InitramfsException("LayerTooLarge", FailureKind.LimitExceeded, $"past {limit}", null),
                    header => LayerApplier.Classify(header, layer, "fuzz layer"), null, cancellationToken);
            }
            finally
            {
                if (Directory.Exists(dir))
                {
                    Directory.Delete(dir, true);
                }
            }
        }

        private static void ApplyTar(Stream tar, long length, CancellationToken cancellationToken)
        {
            var layer = new ParsedLayer
            {
                BackingPath = "/nonexistent/layer.tar",
                BackingLength = length,
                // Never read here: contents are only referred to.
                Blocks = new BlockDigests("/nonexistent/layer.tar", length, new byte[BlockDigests.CountFor(length) * BlockDigests.DigestSize], BlockOwner.CachedLayer, "fuzz layer"),
            };
            var reader = new TarReader(tar);
            TarHeader? header;
            while ((header = reader.Next()) is not null)
            {
                cancellationToken.ThrowIfCancellationRequested();
                LayerApplier.Classify(header, layer, "fuzz layer");
            }
            var rootfs = new Rootfs();
            LayerApplier.Apply(rootfs, layer, "fuzz layer");
            LayerApplier.Apply(rootfs, layer, "fuzz layer 2");
        }
    }
}
