#Requires -Version 7.4
<#
.SYNOPSIS
    Writes the help markdown skeleton for new cmdlets and new parameters from the built module.

.DESCRIPTION
    What PlatyPS's New-MarkdownHelp and Update-MarkdownHelp do, for this repository (`build.ps1
    -Task HelpSkeleton` runs it in a child pwsh, after Build):

    - a cmdlet with no <MarkdownPath>/<Cmdlet>.md gets one, in the PlatyPS 2.0.0 schema, with
      its syntax and parameter blocks filled in from the cmdlet and every piece of prose a
      `{{ placeholder }}`;
    - in existing files the SYNTAX section and the parameters' yaml blocks are rewritten from
      the cmdlet's metadata (keeping each "Default value"), a parameter the file lacks gets a
      block with a placeholder, in alphabetical order, and the block of a parameter the cmdlet
      no longer has is removed, with a warning;
    - a module with no about_<Module>.md gets PlatyPS's about template.

    Every other line is kept byte for byte. The help tests fail while placeholders remain.

.EXAMPLE
    dotnet pwsh -NoProfile -File tools/help/Update-HelpMarkdown.ps1 -ModulePath out/InitramfsPS/InitramfsPS.psd1 -MarkdownPath docs/help
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [Parameter(Mandatory)][string]$ModulePath,
    [Parameter(Mandatory)][string]$MarkdownPath
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
Import-Module (Join-Path $PSScriptRoot 'HelpMarkdown.psm1') -Force
$target = Import-HelpTarget $ModulePath $MarkdownPath
$module = $target.Module
$MarkdownPath = $target.MarkdownPath
$cmdlets = @(Get-Command -Module $module.Name -CommandType Cmdlet | Sort-Object Name)

$results = @(Update-HelpMarkdown -Command $cmdlets -Path $MarkdownPath -ModuleName $module.Name -ExternalHelpFile $cmdlets[0].HelpFile)
foreach ($result in $results) {
    $detail = @(
        if ($result.Added) { "added -$($result.Added -join ', -')" }
        if ($result.Removed) { "removed -$($result.Removed -join ', -')" }
    ) -join '; '
    Write-Host ("{0,-10} {1}{2}" -f $result.Action, $result.Path, $(if ($detail -and $result.Action -ne 'Created') { " ($detail)" }))
}

$about = Join-Path $MarkdownPath "about_$($module.Name).md"
if (-not (Test-Path -LiteralPath $about) -and $PSCmdlet.ShouldProcess($about, 'Create about topic markdown')) {
    $template = @(
        "# $($module.Name)", '', "## about_$($module.Name)", '',
        '# SHORT DESCRIPTION', '', '{{ Short Description Placeholder }}', '',
        '# LONG DESCRIPTION', '', '{{ Long Description Placeholder }}', '',
        '# EXAMPLES', '', '{{ Code or descriptive examples of how to leverage the functions described. }}', '',
        '# NOTE', '', '{{ Note Placeholder - Additional information that a user needs to know. }}', '',
        '# SEE ALSO', '', '{{ See also placeholder }}', '',
        '# KEYWORDS', '', '- {{ Keyword Placeholder }}', ''
    ) -join "`n"
    [IO.File]::WriteAllText($about, $template)
    Write-Host "Created    $about"
}
