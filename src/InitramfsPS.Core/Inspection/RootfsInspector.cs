using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using System.Threading;
using InitramfsPS.Errors;
using InitramfsPS.Init;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Inspection
{
    /// <summary>What <see cref="RootfsInspector.Inspect"/> checks and how severe a missing /dev/console is.</summary>
    internal sealed class InspectionOptions
    {
        /// <summary>
        /// Severity of ConsoleMissing; null skips the check. Info for a rootfs Export-Initramfs will
        /// add /dev/console to, Error for an archive that lacks it.
        /// </summary>
        public FindingSeverity? ConsoleMissingSeverity { get; init; } = FindingSeverity.Info;

        /// <summary>What is said after "/dev/console is missing".</summary>
        public string ConsoleMissingNote { get; init; } = "Export-Initramfs adds it (char 5:1) unless -NoDefaultEntries is given.";

        /// <summary>Report names of PATH_MAX or more and files of 4 GiB or more (NameTooLong, FileTooLarge).</summary>
        public bool CheckArchiveLimits { get; init; } = true;

        /// <summary>
        /// What the export does about /init (<c>InitramfsExporter.Prepare</c>, in Export), for a rootfs
        /// it prepared: a generated /init is reported (InitGenerated), and a /init that could not be
        /// generated is reported by the generator's error instead of InitMissing.
        /// </summary>
        public Init.InitPlan? Init { get; init; }
    }

    /// <summary>
    /// Checks whether a rootfs would start: /init, the workload a generated /init runs, and every
    /// ELF program in the PATH directories, with their program interpreters and shared libraries
    /// looked up inside the rootfs; /dev/console; what the newc format cannot hold.
    /// </summary>
    internal static class RootfsInspector
    {
        /// <summary>Every finding, init problems first, then workload, interpreters, libraries, console, limits.</summary>
        public static List<Finding> Inspect(Rootfs rootfs, InspectionOptions options, CancellationToken cancellationToken)
        {
            using var run = new Run(rootfs, cancellationToken);
            return run.Inspect(options);
        }

        /// <summary>The PATH of a rootfs: a generated /init's, else the image config's, else <see cref="RootfsLookup.DefaultPath"/>.</summary>
        public static string SearchPath(Rootfs rootfs)
        {
            var marker = Init.InitGenerator.ReadMarkers(rootfs);
            if (marker.Path is { } p)
            {
                return p;
            }
            return ConfigPath(rootfs) ?? RootfsLookup.DefaultPath;
        }

        /// <summary>The PATH set by the config's Env of the image the rootfs came from, or null.</summary>
        public static string? ConfigPath(Rootfs rootfs) =>
            rootfs.Image?.Config.Env.Where(e => e.StartsWith("PATH=", StringComparison.Ordinal)).Select(e => e[5..]).LastOrDefault();

        private sealed class Run : IDisposable
        {
            private readonly Rootfs rootfs;
            private readonly CancellationToken cancellationToken;
            private readonly ContentReader reader = new();
            private readonly Dictionary<string, ElfFile?> elfCache = new(StringComparer.Ordinal);
            private readonly LibrarySearch search;
            private readonly List<Finding> findings = new();
            private readonly HashSet<string> checkedBinaries = new(StringComparer.Ordinal);
            private readonly SortedDictionary<string, Needers> missingInterpreters = new(StringComparer.Ordinal);
            private readonly SortedDictionary<string, Needers> missingLibraries = new(StringComparer.Ordinal);
            private int steps;
            private readonly List<Finding> malformed = new();

            public Run(Rootfs rootfs, CancellationToken cancellationToken)
            {
                this.rootfs = rootfs;
                this.cancellationToken = cancellationToken;
                search = new LibrarySearch(rootfs, Elf, cancellationToken);
            }

            public void Dispose() => reader.Dispose();

            public List<Finding> Inspect(InspectionOptions options)
            {
                CheckInit(options.Init);
                string path = SearchPath(rootfs);
                CheckWorkload(path);
                CheckPathDirectories(path);
                foreach (var (interp, needers) in missingInterpreters)
                {
                    findings.Add(new Finding(FindingSeverity.Error, "InterpreterMissing", interp,
                        $"The program interpreter {RootfsPath.Printable(interp)} is not in the rootfs; {needers} cannot start.", needers.Users));
                }
                foreach (var (lib, needers) in missingLibraries)
                {
                    findings.Add(new Finding(FindingSeverity.Error, "LibraryMissing", lib,
                        $"The shared library {RootfsPath.Printable(lib)} is not in the rootfs's library paths; needed by {needers}.", needers.Users));
                }
                findings.AddRange(malformed);
                if (search.ConfProblem is { } conf)
                {
                    findings.Add(new Finding(FindingSeverity.Warning, "LdSoConfLimit", "/etc/ld.so.conf",
                        $"/etc/ld.so.conf was not read whole: {conf}. The directories listed before that were searched, the rest not."));
                }
                if (options.ConsoleMissingSeverity is { } consoleSeverity)
                {
                    CheckConsole(consoleSeverity, options.ConsoleMissingNote);
                }
                if (options.CheckArchiveLimits)
                {
                    CheckLimits();
                }
                return findings;
            }

            /// <summary>Checks for Ctrl+C every few thousand steps of the long loops.</summary>
            private void Step()
            {
                if (++steps % LibrarySearch.CancellationInterval == 0)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                }
            }

            /// <summary>The binaries that need one missing file, each program named once.</summary>
            private sealed class Needers
            {
                public readonly List<string> Users = new();
                public readonly HashSet<string> Programs = new(StringComparer.Ordinal);

                public override string ToString()
                {
                    const int shown = 12;
                    string list = string.Join(", ", Users.Take(shown).Select(RootfsPath.Printable));
                    return Users.Count <= shown ? list : $"{list} and {Users.Count - shown} more ({Users.Count} binaries)";
                }
            }

            private void CheckInit(Init.InitPlan? plan)
            {
                if (plan?.Problem is { } generation)
                {
                    findings.Add(new Finding(FindingSeverity.Error, generation.ErrorId, "/init", generation.Message));
                    return;
                }
                if (plan?.Generated is not null)
                {
                    findings.Add(new Finding(FindingSeverity.Info, "InitGenerated", "/init",
                        $"The rootfs has no /init: Export-Initramfs writes one generated from the image config that runs {plan.Command} and powers the VM off when it exits."));
                }
                foreach (var problem in InitCheck.Check(rootfs))
                {
                    findings.Add(new Finding(FindingSeverity.Error, problem.ErrorId, "/init", problem.Message));
                }
                var target = rootfs.Resolve("/init");
                if (target is not { Type: EntryType.File } || !target.IsExecutable)
                {
                    return;
                }
                CheckExecutable("/init", target);
            }

            /// <summary>Checks a program that will be run: an ELF binary, or a script whose interpreter is checked.</summary>
            private void CheckExecutable(string shownPath, RootfsEntry target)
            {
                if (Elf(target) is not null)
                {
                    CheckBinary(shownPath, target);
                    return;
                }
                if (target.Content is null)
                {
                    return;
                }
                string? interpreter;
                try
                {
                    interpreter = InitCheck.Interpreter(reader.ReadPrefix(target.Content, 256));
                }
                catch (Exception ex) when (ex is System.IO.IOException or InitramfsException { ContentMismatch: false })
                {
                    return;
                }
                if (interpreter is null || !interpreter.StartsWith('/'))
                {
                    return;
                }
                var resolved = rootfs.Resolve(interpreter);
                if (resolved is { Type: EntryType.File } && resolved.IsExecutable)
                {
                    CheckBinary(interpreter, resolved);
                }
            }

            private void CheckWorkload(string path)
            {
                var markers = Init.InitGenerator.ReadMarkers(rootfs);
                if (markers.Program is not { } program)
                {
                    return;
                }
                var (found, entry) = RootfsLookup.FindProgram(rootfs, program, path);
                if (entry is null)
                {
                    findings.Add(new Finding(FindingSeverity.Error, "WorkloadMissing", found ?? program,
                        $"/init runs '{RootfsPath.Printable(program)}', which is not {(program.Contains('/', StringComparison.Ordinal) ? "in the rootfs" : "in any directory of PATH " + path)}."));
                    return;
                }
                if (entry.Type != EntryType.File || !entry.IsExecutable)
                {
                    findings.Add(new Finding(FindingSeverity.Error, "WorkloadNotExecutable", found!,
                        $"/init runs {RootfsPath.Printable(found)}, which resolves to {RootfsPath.Printable(entry.Path)}, {(entry.Type == EntryType.File ? "a file with mode " + entry.OctalMode : "a " + entry.Type)}, not an executable file."));
                    return;
                }
                if (Elf(entry) is null && entry.Content is not null)
                {
                    string? interpreter = null;
                    try
                    {
                        interpreter = InitCheck.Interpreter(reader.ReadPrefix(entry.Content, 256));
                    }
                    catch (Exception ex) when (ex is System.IO.IOException or InitramfsException { ContentMismatch: false })
                    {
                    }
                    if (interpreter is not null)
                    {
                        var resolved = interpreter.StartsWith('/') ? rootfs.Resolve(interpreter) : null;
                        if (resolved is not { Type: EntryType.File } || !resolved.IsExecutable)
                        {
                            findings.Add(new Finding(FindingSeverity.Error, "WorkloadInterpreterMissing", found!,
                                $"/init runs {RootfsPath.Printable(found)}, a script for '{RootfsPath.Printable(interpreter)}', which is not an executable file in the rootfs."));
                            return;
                        }
                    }
                }
                CheckExecutable(found!, entry);
            }

            private void CheckPathDirectories(string path)
            {
                var seenDirs = new HashSet<string>(StringComparer.Ordinal);
                foreach (string dir in path.Split(':', StringSplitOptions.RemoveEmptyEntries))
                {
                    if (!dir.StartsWith('/'))
                    {
                        continue;
                    }
                    // As a shell inside the VM: '/../bin' is /bin.
                    string normalized = RootfsPath.Confine(dir);
                    var resolved = rootfs.Resolve(dir);
                    if (resolved?.Type != EntryType.Directory || !seenDirs.Add(resolved.Path))
                    {
                        continue;
                    }
                    foreach (var child in rootfs.GetChildren(resolved.Path).ToList())
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                        string shown = RootfsPath.Combine(normalized, child.Name);
                        var target = child.Type == EntryType.Symlink ? rootfs.Resolve(RootfsPath.Combine(resolved.Path, child.Name)) : child;
                        if (target is { Type: EntryType.File } && target.IsExecutable && Elf(target) is not null)
                        {
                            CheckBinary(shown, target);
                        }
                    }
                }
            }

            private void CheckBinary(string shownPath, RootfsEntry file)
            {
                if (!checkedBinaries.Add(file.Path))
                {
                    return;
                }
                var elf = Elf(file);
                if (elf is null)
                {
                    return;
                }
                if (elf.Problem is not null)
                {
                    malformed.Add(new Finding(FindingSeverity.Warning, "ElfMalformed", shownPath,
                        $"{RootfsPath.Printable(shownPath)} is an ELF file that {elf.Problem}; it was not checked further."));
                    return;
                }
                if (elf.Interpreter is { } interp)
                {
                    var resolved = interp.StartsWith('/') ? rootfs.Resolve(interp) : null;
                    if (resolved is not { Type: EntryType.File })
                    {
                        Add(missingInterpreters, interp, shownPath);
                    }
                }
                // Breadth first through the libraries, each checked once for this program.
                var visited = new HashSet<string>(StringComparer.Ordinal) { file.Path };
                var queue = new Queue<(RootfsEntry Entry, ElfFile Elf, string? Via)>();
                queue.Enqueue((file, elf, null));
                while (queue.Count > 0)
                {
                    var (entry, obj, via) = queue.Dequeue();
                    foreach (string needed in obj.Needed)
                    {
                        Step();
                        var lib = search.Find(needed, obj, entry.Path, elf, file.Path);
                        if (lib is null)
                        {
                            Add(missingLibraries, needed, via is null ? shownPath : $"{shownPath} (through {via})");
                            continue;
                        }
                        if (!visited.Add(lib.Path))
                        {
                            continue;
                        }
                        var libElf = Elf(lib);
                        if (libElf is null)
                        {
                            continue;
                        }
                        if (libElf.Problem is not null)
                        {
                            if (checkedBinaries.Add(lib.Path))
                            {
                                malformed.Add(new Finding(FindingSeverity.Warning, "ElfMalformed", lib.Path,
                                    $"{RootfsPath.Printable(lib.Path)} is an ELF file that {libElf.Problem}; it was not checked further."));
                            }
                            continue;
                        }
                        queue.Enqueue((lib, libElf, via ?? needed));
                    }
                }
            }

            private static void Add(SortedDictionary<string, Needers> map, string key, string user)
            {
                if (!map.TryGetValue(key, out var needers))
                {
                    map[key] = needers = new Needers();
                }
                // A program is named once: directly when it needs the file itself, else through its
                // first library (a set, so that thousands of programs cost no more than their number).
                int paren = user.IndexOf(" (through ", StringComparison.Ordinal);
                string program = paren < 0 ? user : user[..paren];
                if (needers.Programs.Add(program))
                {
                    needers.Users.Add(user);
                }
            }

            private ElfFile? Elf(RootfsEntry entry)
            {
                if (entry.Type != EntryType.File || entry.Content is null || entry.Size < 16)
                {
                    return null;
                }
                if (!elfCache.TryGetValue(entry.Path, out var elf))
                {
                    elf = ElfFile.Read(entry.Content, reader);
                    elfCache[entry.Path] = elf;
                }
                return elf;
            }

            private void CheckConsole(FindingSeverity severity, string note)
            {
                var console = rootfs.GetEntry("/dev/console");
                if (console is null)
                {
                    findings.Add(new Finding(severity, "ConsoleMissing", "/dev/console",
                        $"/dev/console is missing, so /init would start with no standard input or output. {note}".TrimEnd()));
                }
                else if (console.Type != EntryType.CharDevice || console.DevMajor != 5 || console.DevMinor != 1)
                {
                    findings.Add(new Finding(FindingSeverity.Warning, "ConsoleNotDevice", "/dev/console",
                        $"/dev/console is {(console.Type == EntryType.CharDevice ? $"char device {console.DevMajor}:{console.DevMinor}" : "a " + console.Type)}, not the console (char 5:1)."));
                }
            }

            private void CheckLimits()
            {
                foreach (var e in rootfs.GetEntries())
                {
                    Step();
                    int nameBytes = Encoding.UTF8.GetByteCount(RootfsPath.ArchiveName(e.Path));
                    if (!RootfsPath.FitsPathMax(nameBytes))
                    {
                        findings.Add(new Finding(FindingSeverity.Error, "NameTooLong", e.Path,
                            $"The name is {nameBytes} bytes; the kernel drops names of PATH_MAX ({RootfsPath.PathMax}) bytes or more, and Export-Initramfs refuses them."));
                    }
                    if (e.Type == EntryType.Symlink && !RootfsPath.FitsPathMax(Encoding.UTF8.GetByteCount(e.LinkTarget ?? string.Empty)))
                    {
                        findings.Add(new Finding(FindingSeverity.Error, "NameTooLong", e.Path,
                            $"The symlink's target is {Encoding.UTF8.GetByteCount(e.LinkTarget!)} bytes; the kernel drops targets of PATH_MAX ({RootfsPath.PathMax}) bytes or more."));
                    }
                    if (e.Type == EntryType.File && e.Size > RootfsPath.MaxArchiveFileSize)
                    {
                        findings.Add(new Finding(FindingSeverity.Error, "FileTooLarge", e.Path,
                            $"The file is {e.Size} bytes; a newc archive cannot hold a file of 4 GiB or more."));
                    }
                }
            }
        }
    }
}
