// Hardhat's node (`npx hardhat node`) is the real Ethereum JSON-RPC node of the integration tests;
// the contracts themselves are compiled by scripts/compile.js with the pinned solc-js, not by Hardhat.
// Its dev accounts are the same mnemonic's as the embedded chain's, with the same chain id.
module.exports = {
  networks: {
    hardhat: {
      chainId: 31337,
      hardfork: 'cancun',
      // Automine for transactions, and a block every second so that the chain's clock (the latest
      // block's timestamp) moves on while the bots wait for windows and clocks.
      mining: { auto: true, interval: 1000 },
    },
  },
};
