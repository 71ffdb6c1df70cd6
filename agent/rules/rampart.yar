// Rampart's builtin YARA-X rules (agent/rules/rampart.yar, embedded in the binary).
// The externals filename, filepath, extension, filetype and owner are set per file.

rule php_in_image
{
    meta:
        severity = "high"
        category = "webshell"
        description = "PHP code in a file named as an image (uploaded through an image form, run via an include or .htaccess)"
    strings:
        $php = "<?php" nocase
        $short = /<\?=\s*\$_(GET|POST|REQUEST)/
    condition:
        (extension == "jpg" or extension == "jpeg" or extension == "png" or
         extension == "gif" or extension == "ico" or extension == "bmp" or extension == "webp")
        and any of them
}

rule elf_in_web_tree
{
    meta:
        severity = "high"
        category = "dropper"
        description = "A Linux executable inside a web root or account home (bots, miners, proxies)"
    condition:
        uint32(0) == 0x464c457f and
        filepath matches /\/(var\/www|home\/[^\/]+\/(public_html|www|tmp))\//
}

rule coin_miner
{
    meta:
        severity = "high"
        category = "miner"
        description = "Cryptocurrency miner configuration or binary (stratum pools, xmrig)"
    strings:
        $stratum = "stratum+tcp://" nocase
        $stratum_ssl = "stratum+ssl://" nocase
        $xmrig = "xmrig" nocase
        $donate = "donate-level" nocase
        $algo = /"algo"\s*:\s*"(rx\/0|cn\/r|randomx|cryptonight)/ nocase
    condition:
        2 of them
}

rule php_webshell_b64_loader
{
    meta:
        severity = "critical"
        category = "webshell"
        description = "Small PHP loader: decodes a request parameter and runs it (a code function or a variable one)"
    strings:
        $php = "<?php" nocase
        $dec = /(base64_decode|str_rot13|gzinflate)\s*\(\s*\$_(GET|POST|REQUEST|COOKIE)\s*\[/ nocase
        $run = /\b(eval|assert|system|passthru|shell_exec|call_user_func)\s*\(/ nocase
        $var_call = /@\$\w{1,30}\s*\(/
    condition:
        $php and $dec and ($run or $var_call) and filesize < 20KB
}
