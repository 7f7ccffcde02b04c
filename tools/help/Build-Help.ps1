#Requires -Version 7.4
<#
.SYNOPSIS
    Writes the built module's help: the MAML file of its cmdlets and its about topics.

.DESCRIPTION
    `build.ps1 -Task Help` runs this in a child pwsh, because it imports the built module and a
    loaded module dll stays locked until the process exits. It writes, in <module>/<Culture>/:

      <Assembly>.dll-Help.xml   syntax and parameter facts from the cmdlets' metadata, prose
                                and default values from <MarkdownPath>/<Cmdlet>.md
      about_<Topic>.help.txt    from <MarkdownPath>/about_<Topic>.md

    Unfinished markdown (placeholders, parameters missing from the markdown or from the code)
    gives warnings here, not a failed build, so that `-Task HelpSkeleton` can still run; the
    help tests fail on it.

.EXAMPLE
    dotnet pwsh -NoProfile -File tools/help/Build-Help.ps1 -ModulePath out/InitramfsPS/InitramfsPS.psd1 -MarkdownPath docs/help
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string]$ModulePath,
    [Parameter(Mandatory)][string]$MarkdownPath,
    [string]$Culture = 'en-US'
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
Import-Module (Join-Path $PSScriptRoot 'HelpMarkdown.psm1') -Force
$target = Import-HelpTarget $ModulePath $MarkdownPath
$module = $target.Module
$MarkdownPath = $target.MarkdownPath
$outDir = Join-Path $module.ModuleBase $Culture
$null = New-Item -ItemType Directory -Force -Path $outDir

# A binary cmdlet's HelpFile names the file Get-Help reads (<Assembly>.dll-Help.xml).
$cmdlets = @(Get-Command -Module $module.Name -CommandType Cmdlet | Sort-Object Name)
foreach ($group in $cmdlets | Group-Object HelpFile) {
    $file = Join-Path $outDir $group.Name
    $problems = @(ConvertTo-MamlHelp -Command $group.Group -MarkdownPath $MarkdownPath -OutputFile $file)
    [xml]$maml = Get-Content -Raw -LiteralPath $file  # throws if the writer produced bad XML
    Write-Host ("Wrote {0}: {1} cmdlets, {2} markdown problems" -f $file, $maml.helpItems.command.Count, $problems.Count)
}

foreach ($about in Get-ChildItem -LiteralPath $MarkdownPath -Filter 'about_*.md' -File) {
    $file = Join-Path $outDir ($about.BaseName + '.help.txt')
    [IO.File]::WriteAllText($file, (ConvertTo-AboutHelpText -Path $about.FullName))
    Write-Host "Wrote $file"
}
