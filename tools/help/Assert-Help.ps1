#Requires -Version 7.4
<#
.SYNOPSIS
    Checks, in a fresh pwsh, that Get-Help reads the help Build-Help.ps1 wrote.

.DESCRIPTION
    Imports the built module and, for every cmdlet, checks that Get-Help's answer comes from
    the MAML file (a broken or misnamed file makes Get-Help fall back, silently, to help made
    from the metadata): its syntax lines are the ones the metadata gives, with every parameter,
    and it lists every parameter. Checks that each about topic is found. Exits 1 on failure.
#>
[CmdletBinding()]
param([Parameter(Mandatory)][string]$ModulePath, [string]$MarkdownPath)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
Import-Module (Join-Path $PSScriptRoot 'HelpMarkdown.psm1') -Force
$target = Import-HelpTarget $ModulePath $MarkdownPath
$module = $target.Module
$MarkdownPath = $target.MarkdownPath
$failures = [Collections.Generic.List[string]]::new()

foreach ($cmdlet in Get-Command -Module $module.Name -CommandType Cmdlet | Sort-Object Name) {
    $facts = Get-CommandHelpFacts $cmdlet
    $help = Get-Help $cmdlet.Name -Full
    $text = $help | Out-String -Width 4096
    if ($help -is [string] -or -not $help.PSObject.Properties['details']) {
        $failures.Add("$($cmdlet.Name): Get-Help found no MAML help.")
        continue
    }
    foreach ($set in $facts.ParameterSets) {
        $line = Format-HelpSyntax -Facts $facts -ParameterSet $set
        if (-not $text.Contains($line)) { $failures.Add("$($cmdlet.Name): Get-Help -Full does not show the syntax line '$line'.") }
    }
    $shown = @($help.parameters.parameter | ForEach-Object name)
    $missing = @($facts.Parameters.Name | Where-Object { $_ -notin $shown })
    if ($missing) { $failures.Add("$($cmdlet.Name): Get-Help lists no -$($missing -join ', -').") }
}

if ($MarkdownPath) {
    foreach ($about in Get-ChildItem -LiteralPath $MarkdownPath -Filter 'about_*.md' -File) {
        $topic = Get-Help $about.BaseName -ErrorAction SilentlyContinue | Out-String
        if ($topic -notmatch "TOPIC\s+$([regex]::Escape($about.BaseName))") { $failures.Add("Get-Help $($about.BaseName) does not find the topic.") }
    }
}

if ($failures.Count) {
    $failures | ForEach-Object { Write-Host "Help check: $_" -ForegroundColor Red }
    exit 1
}
Write-Host "Get-Help reads the help of $($module.Name) $($module.Version)."
