using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Management.Automation;
using System.Text;
using InitramfsPS.Errors;
using InitramfsPS.Init;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Commands
{
    /// <summary>
    /// Sets /init, the program the kernel runs first: from a host script, from text, or generated to
    /// run the image config's command (or -Command) and power the VM off when it exits.
    /// </summary>
    [Cmdlet(VerbsCommon.Set, "InitramfsInit", DefaultParameterSetName = GenerateSet)]
    [OutputType(typeof(Rootfs))]
    public sealed class SetInitramfsInitCommand : RootfsCmdlet
    {
        private const string PathSet = "Path";
        private const string ContentSet = "Content";
        private const string CommandSet = "Command";
        private const string GenerateSet = "Generate";

        /// <summary>A host file to use as /init (its bytes are taken as they are).</summary>
        [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet)]
        [ValidateNotNullOrEmpty]
        public string Path { get; set; } = null!;

        /// <summary>The text of /init; CRLF line ends become LF, since the kernel would read "sh\r" as the interpreter.</summary>
        [Parameter(Mandatory = true, ParameterSetName = ContentSet)]
        [ValidateNotNullOrEmpty]
        public string Content { get; set; } = null!;

        /// <summary>The workload's argv for a generated /init, instead of the image config's Entrypoint and Cmd.</summary>
        [Parameter(Mandatory = true, ParameterSetName = CommandSet)]
        [AllowEmptyString]
        [ValidateCount(1, int.MaxValue)]
        public string[] Command { get; set; } = null!;

        /// <summary>The host name a generated /init sets.</summary>
        [Parameter(ParameterSetName = CommandSet)]
        [Parameter(ParameterSetName = GenerateSet)]
        [ValidatePattern(@"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\z")]
        [ValidateLength(1, 64)]
        public string Hostname { get; set; } = "initramfs";

        /// <inheritdoc/>
        protected override void ProcessRecord()
        {
            Guard("/init", () =>
            {
                Content? content = null;
                long mtime = 0;
                string source;
                if (ParameterSetName == PathSet)
                {
                    string host = FileSystemPath(Path, "HostPathNotFileSystem", "init script");
                    var info = new FileInfo(host);
                    if (!info.Exists)
                    {
                        throw new InitramfsException("HostFileNotFound", FailureKind.NotFound, $"The init script '{host}' does not exist.", host);
                    }
                    content = new HostFileContent(info.FullName, info.Length);
                    mtime = info.LastWriteTimeUtc.ToUnixSeconds();
                    source = "host:" + info.FullName;
                }
                else if (ParameterSetName == ContentSet)
                {
                    content = new InlineContent(Encoding.UTF8.GetBytes(Content.Replace("\r\n", "\n", StringComparison.Ordinal)));
                    source = InitPlanner.SetByUser;
                }
                else
                {
                    source = string.Empty;
                }
                var rootfs = RootfsToChange();
                if (rootfs is null)
                {
                    return;
                }
                if (rootfs.GetEntry("/init")?.Type == EntryType.Directory)
                {
                    throw new InitramfsException("InitIsDirectory", FailureKind.InvalidArgument,
                        "/init is a directory in this rootfs; remove it before setting an init.", "/init");
                }
                RootfsEntry entry;
                if (content is null)
                {
                    var spec = InitPlanner.Spec(rootfs, ParameterSetName == CommandSet ? Command : null, Hostname)
                        ?? throw new InitramfsException("InitCommandMissing", FailureKind.InvalidArgument,
                            "This rootfs did not come from an image, so there is no image config to take a command from; give one with -Command, or an init with -Path or -Content.", "/init");
                    var warnings = new List<string>();
                    string script = InitGenerator.Generate(rootfs, spec, warnings);
                    foreach (string warning in warnings)
                    {
                        WriteWarning(warning);
                    }
                    entry = InitPlanner.Entry(script, "generated");
                    rootfs.Changes.Add($"set /init generated from {spec.Origin}: {InitPlanner.CommandLine(spec.Command)}");
                }
                else
                {
                    rootfs.Changes.Add("set /init from " + source);
                    entry = new RootfsEntry
                    {
                        Path = "/init",
                        Type = EntryType.File,
                        Mode = 0x1ED,
                        MTime = mtime,
                        Size = content.Length,
                        Content = content,
                        Source = source,
                    };
                }
                rootfs.Set(entry, null);
                WriteObject(rootfs);
            });
        }
    }
}
