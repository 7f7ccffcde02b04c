using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Language;
using InitramfsPS.Cache;
using InitramfsPS.Errors;
using InitramfsPS.Images;

namespace InitramfsPS.Commands
{
    /// <summary>Resolves an image reference to an OciImage: manifest, config and layers, verified.</summary>
    [Cmdlet(VerbsCommon.Get, "OciImage")]
    [OutputType(typeof(OciImage))]
    public sealed class GetOciImageCommand : InitramfsCmdlet
    {
        /// <summary>The image: <c>oci:dir[:tag|@digest]</c>, <c>docker-archive:file[:name:tag]</c>, or a registry reference.</summary>
        [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [Alias("Name", "ImageReference")]
        [ValidateNotNullOrEmpty]
        public string[] Reference { get; set; } = null!;

        /// <summary>The platform to pick from a multi-platform image, <c>os/arch[/variant]</c>.</summary>
        [Parameter]
        [ArgumentCompleter(typeof(PlatformCompleter))]
        [ValidateNotNullOrEmpty]
        public string Platform { get; set; } = Images.Platform.Default.ToString();

        /// <inheritdoc/>
        protected override void ProcessRecord()
        {
            foreach (string text in Reference)
            {
                Guard(text, () =>
                {
                    var platform = Images.Platform.Parse(Platform);
                    var reference = ImageReference.Parse(text);
                    WriteVerbose($"Resolving {reference} for {platform}.");
                    OciImage image = reference.Transport switch
                    {
                        ImageTransport.OciLayout => LayoutResolver.FromLayout(reference, GetUnresolvedProviderPathFromPSPath(reference.Path), platform),
                        ImageTransport.DockerArchive => ImportArchive(reference),
                        _ => throw new InitramfsException("RegistryNotSupported", FailureKind.NotImplemented,
                            $"Pulling {reference} from a registry is not supported yet (it arrives with registry support). " +
                            "Use a local image: oci:<layout dir>[:<tag>] or docker-archive:<file>[:<name:tag>].", reference.ToString()),
                    };
                    if (MyInvocation.BoundParameters.ContainsKey(nameof(Platform)) && !platform.Matches(image.Platform))
                    {
                        WriteWarning($"{reference} is a single-platform image for {image.Platform}, not {platform}.");
                    }
                    WriteObject(image);
                });
            }
        }

        private OciImage ImportArchive(ImageReference reference)
        {
            const string activity = "Reading docker archive";
            string path = GetUnresolvedProviderPathFromPSPath(reference.Path);
            try
            {
                return DockerArchiveImporter.Import(reference, path, new BlobStore(BlobStore.DefaultCacheRoot()),
                    (done, total) => Progress(2, activity, path, total == 0 ? 100 : (int)(done * 100 / total)), CancellationToken);
            }
            finally
            {
                CompleteProgress(2, activity);
            }
        }
    }

    /// <summary>Completes -Platform with the platforms images are commonly built for.</summary>
    public sealed class PlatformCompleter : IArgumentCompleter
    {
        /// <inheritdoc/>
        public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
            CommandAst commandAst, IDictionary fakeBoundParameters)
        {
            return Images.Platform.Common
                .Where(p => p.StartsWith(wordToComplete.Trim('\'', '"'), System.StringComparison.OrdinalIgnoreCase))
                .Select(p => new CompletionResult(p, p, CompletionResultType.ParameterValue, p));
        }
    }
}
